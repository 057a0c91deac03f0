package gofunc

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type go_event -type go_func -type go_addr -output-stem gofunc bpf gofunc.c -- -I../../headers -I../common

// The test server, prebuilt for the kernel matrix's VMs, which have no Go
// toolchain (see the test's server helper): amd64 (the VMs' architecture)
// with DWARF, where the goroutine id's offset comes from.
//go:generate sh -c "CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -o testdata/server.amd64 ./testdata/server && gzip -9nf testdata/server.amd64 && chmod 644 testdata/server.amd64.gz"
