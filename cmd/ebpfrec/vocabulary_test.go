package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ebpfrec/ebpfrec/analyze"
	"github.com/ebpfrec/ebpfrec/internal/cmdtest"
	"github.com/ebpfrec/ebpfrec/internal/lossterms"
	"github.com/ebpfrec/ebpfrec/record"
	"github.com/ebpfrec/ebpfrec/store"
)

// Every output that names the events not recorded uses the terms of
// internal/lossterms, and the --help of each command that shows them
// explains them: record's summary, info, replay (text and JSON, running
// totals), summary (text and JSON); the losses table is checked by
// ebpfrec-query's TestLossesTableVocabulary.
func TestLossVocabulary(t *testing.T) {
	loss := fixtureDir(t, "loss")
	outputs := map[string]string{}
	run := func(name string, args ...string) {
		stdout, stderr, code := runCmd(t, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, stderr)
		}
		outputs[name] = stdout + stderr
	}
	run("info", "info", loss)
	run("replay", "replay", loss)
	run("replay json", "replay", "--format", "json", loss)
	run("summary", "summary", loss)
	run("summary json", "summary", "--json", loss)
	var sum bytes.Buffer
	printRecordSummary(&sum, &record.Summary{Dir: "rec", CommandExit: -1, Streams: []record.StreamResult{
		{Name: "syscalls", Kind: store.KindRingbuf, Recorded: 237, KernelLostRingbuf: 200186},
	}})
	outputs["record summary"] = sum.String()

	want := map[string][]string{
		"info":           {"KERNEL_LOST_RINGBUF", "200186"},
		"replay":         {"kernel_lost_ringbuf_total=200186"},
		"replay json":    {`"kernel_lost_ringbuf_total":200186`},
		"summary":        {"kernel_lost_ringbuf 200186"},
		"summary json":   {`"kernel_lost_ringbuf": 200186`},
		"record summary": {"kernel_lost_ringbuf", "200186", "storage_lost", "lost in the kernel"},
	}
	for name, out := range outputs {
		for _, w := range want[name] {
			if !strings.Contains(out, w) {
				t.Errorf("%s does not say %q:\n%s", name, w, out)
			}
		}
		if m := cmdtest.OldLossWords.FindString(out); m != "" {
			t.Errorf("%s names a loss %q, outside the vocabulary:\n%s", name, m, out)
		}
	}
	for _, cmd := range []string{"record", "replay", "summary", "info"} {
		stdout, _, _ := runCmd(t, cmd, "--help")
		for _, term := range []string{lossterms.KernelLostPerfbuf, lossterms.KernelLostRingbuf, lossterms.EbpfrecDropped, lossterms.StorageLost} {
			if !strings.Contains(stdout, term+"  ") {
				t.Errorf("%s --help does not explain %s:\n%s", cmd, term, stdout)
			}
		}
	}
}

// TestHelpNamesEveryTable: export --help and query --help name every
// table an export holds (analyze.Tables). They named exec, exit, open,
// tcp, syscalls, raw, losses and recording only: not processes, nor the
// user-space tracers' gofunc, dns and bash, which every export writes.
func TestHelpNamesEveryTable(t *testing.T) {
	for _, cmd := range []string{"export", "query"} {
		stdout, _, code := runCmd(t, cmd, "--help")
		if code != 0 {
			t.Fatalf("%s --help: exit %d", cmd, code)
		}
		text := strings.Join(strings.Fields(stdout), " ")
		if !strings.Contains(text, strings.Join(analyze.Tables, ", ")) {
			t.Errorf("%s --help does not list the tables %s:\n%s", cmd, strings.Join(analyze.Tables, ", "), stdout)
		}
	}
}
