import java.util.concurrent.CountDownLatch;

import org.codelibs.opensearch.runner.OpenSearchRunner;

/**
 * Runs one embedded OpenSearch 2.19 node for the pump test-suite; started by tests/servers/opensearch.py.
 *
 * <p>Usage: {@code OpenSearchTestNode BASE_DIR HTTP_PORT TRANSPORT_PORT}.
 *
 * <ul>
 *   <li>Binds only 127.0.0.1 and uses single-node discovery, so it never joins or bootstraps a
 *       cluster with another node on the machine (e.g. a parallel test worker's).</li>
 *   <li>Turns the disk-usage threshold off: CI disks are often more than 85-95% full, which would
 *       otherwise leave new shards unassigned or make indices read-only.</li>
 *   <li>SIGTERM runs a shutdown hook that closes the node (flushes shards, releases the node lock)
 *       before the JVM exits.</li>
 * </ul>
 */
public final class OpenSearchTestNode {
    private OpenSearchTestNode() {
    }

    public static void main(final String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: OpenSearchTestNode BASE_DIR HTTP_PORT TRANSPORT_PORT");
            System.exit(2);
        }
        final String baseDir = args[0];
        final String httpPort = args[1];
        final String transportPort = args[2];

        final OpenSearchRunner runner = new OpenSearchRunner();
        final CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                runner.close();
                System.err.println("OpenSearchTestNode: node closed");
            } catch (final Exception e) {
                System.err.println("OpenSearchTestNode: closing the node failed: " + e);
            } finally {
                closed.countDown();
            }
        }, "test-node-shutdown"));

        runner.onBuild((number, settings) -> {
            settings.put("network.host", "127.0.0.1");
            settings.put("http.port", httpPort);
            settings.put("transport.port", transportPort);
            settings.put("discovery.type", "single-node");
            settings.put("cluster.routing.allocation.disk.threshold_enabled", false);
            // Without this the runner asks for the deprecated "master" role name and logs a warning.
            settings.putList("node.roles", "cluster_manager", "data", "ingest");
        });
        try {
            runner.build(OpenSearchRunner.newConfigs()
                    .basePath(baseDir)
                    .numOfNode(1)
                    .clusterName("pump-test"));
        } catch (final RuntimeException e) {
            e.printStackTrace();
            // halt, not exit: the shutdown hook would wait for a node that never started.
            Runtime.getRuntime().halt(1);
        }
        System.err.println("OpenSearchTestNode: started, HTTP on 127.0.0.1:" + httpPort);
        closed.await();
    }
}
