// Command recstats prints "EVENTS LOST FROM TO" of a recording (times in
// Unix seconds), for scripts/bench-perf.sh.
package main

import (
	"fmt"
	"os"

	"github.com/ebpfrec/ebpfrec/store"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: recstats DIR")
		os.Exit(2)
	}
	s, err := store.Info(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "recstats:", err)
		os.Exit(1)
	}
	var lost uint64
	for _, st := range s.Streams {
		lost += st.Loss.Total()
	}
	fmt.Printf("%d %d %.9f %.9f\n", s.Events, lost, float64(s.From.UnixNano())/1e9, float64(s.To.UnixNano())/1e9)
}
