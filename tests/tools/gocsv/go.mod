module gocsv

go 1.21
