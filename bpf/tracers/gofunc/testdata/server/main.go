// server is the Go HTTP server that the gofunc tracer's tests instrument.
// It listens on 127.0.0.1 (an ephemeral port), prints the port on stdout,
// and answers:
//
//	/hello?n=K  "hello K goid=G" (handleHello)
//	/sum?a=X&b=Y "sum X+Y=Z goid=G" (handleSum)
//
// where G is the goroutine that ran the handler, read from runtime.Stack
// ("goroutine G [running]:"), so a test can compare it with the goroutine
// id the tracer read. It exits when stdin closes. With the arguments
// "selftest N" it makes N requests to /hello itself instead, one per
// connection, prints the answers and exits (1 if one was wrong). `go generate` in
// package gofunc commits a prebuilt copy for the kernel matrix's VMs,
// which have no Go toolchain.
package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
)

// goid returns the current goroutine's id.
func goid() string {
	var b [64]byte
	s := b[:runtime.Stack(b[:], false)]
	s = bytes.TrimPrefix(s, []byte("goroutine "))
	if i := bytes.IndexByte(s, ' '); i > 0 {
		return string(s[:i])
	}
	return "?"
}

// handleHello's frame is larger than a new goroutine's stack, so that
// every call grows the stack in its prologue (morestack), which then runs
// the function again from its first instruction: the entry probe fires
// twice for one call, and the tracer must report it once.
//
//go:noinline
func handleHello(w http.ResponseWriter, r *http.Request) {
	var pad [16 << 10]byte
	n := r.URL.Query().Get("n")
	copy(pad[:], n)
	io.WriteString(w, "hello "+string(pad[:len(n)])+" goid="+goid())
}

//go:noinline
func handleSum(w http.ResponseWriter, r *http.Request) {
	a, _ := strconv.Atoi(r.URL.Query().Get("a"))
	b, _ := strconv.Atoi(r.URL.Query().Get("b"))
	io.WriteString(w, "sum "+strconv.Itoa(a)+"+"+strconv.Itoa(b)+"="+add(a, b)+" goid="+goid())
}

// add is not matched by main.handle*: its calls must not be recorded.
//
//go:noinline
func add(a, b int) string { return strconv.Itoa(a + b) }

// selftest makes n requests to /hello at addr and prints the answers.
func selftest(addr, n string) int {
	count, err := strconv.Atoi(n)
	if err != nil {
		return 2
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range count {
		resp, err := client.Get("http://" + addr + "/hello?n=" + strconv.Itoa(i))
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			return 1
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := "hello " + strconv.Itoa(i) + " goid="
		if err != nil || !bytes.HasPrefix(body, []byte(want)) {
			os.Stderr.WriteString("bad answer: " + string(body) + "\n")
			return 1
		}
		os.Stdout.Write(append(body, '\n'))
	}
	return 0
}

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", handleHello)
	mux.HandleFunc("/sum", handleSum)
	if len(os.Args) == 3 && os.Args[1] == "selftest" {
		go http.Serve(ln, mux)
		os.Exit(selftest(ln.Addr().String(), os.Args[2]))
	}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	os.Stdout.WriteString(strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) + "\n")
	http.Serve(ln, mux)
}
