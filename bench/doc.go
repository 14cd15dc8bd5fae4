// Package bench holds fn's benchmarks: each measures a part of fn against a baseline run side by
// side in the same run, and prints a table. Run them with make bench.
package bench
