//go:build ebpfrec_duckdb

package main

// Built with -tags ebpfrec_duckdb, ebpfrec links DuckDB as it did before
// queries moved to ebpfrec-query (it never runs it): the baseline that
// scripts/bench-footprint.sh measures the lean recorder against, in the
// same run.
import _ "github.com/ebpfrec/ebpfrec/analyze/query"
