// Command ferretdb-test runs an embedded FerretDB v1 (SQLite backend) for the pump test-suite.
//
// It exists because `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2` builds a
// binary that panics at start-up: the module zip lacks the generated build/version/version.txt
// (FerretDB issue #2982). The embeddable package github.com/FerretDB/FerretDB/ferretdb does not
// read that file, so wrapping it in this tiny main gives a working server built purely from the
// Go module proxy. It is started and stopped by tests/servers/ferretdb.py.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on")
	dataDir := flag.String("data-dir", "", "directory holding the SQLite databases (required)")
	logLevel := flag.String("log-level", "info", "log level: debug, info, warn or error")
	flag.Parse()

	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "ferretdb-test: -data-dir is required")
		os.Exit(2)
	}

	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-test: %s\n", err)
		os.Exit(1)
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-test: bad -log-level: %s\n", err)
		os.Exit(2)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	// The SQLite URL must name a directory and end with a slash; each database becomes one file.
	sqliteURL := "file:" + *dataDir
	if sqliteURL[len(sqliteURL)-1] != '/' {
		sqliteURL += "/"
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		logger.Error("cannot create FerretDB", "error", err)
		os.Exit(1)
	}

	// SIGTERM/SIGINT cancel the context; Run then closes the listener and the SQLite backend,
	// so the test tooling gets a clean shutdown with flushed database files.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	logger.Info("ferretdb-test starting", "listen", *listen, "sqlite", sqliteURL)

	if err := f.Run(ctx); err != nil {
		logger.Error("FerretDB stopped with an error", "error", err)
		os.Exit(1)
	}

	logger.Info("ferretdb-test stopped")
}
