package bpf

import (
	"context"
	"sync"
	"testing"
)

func TestQueueFanOut(t *testing.T) {
	q := NewQueue[int](4)
	a, b := q.Subscribe(), q.Subscribe()
	for i := range 3 {
		if !q.Send(context.Background(), i) {
			t.Fatal("Send failed")
		}
	}
	q.Close()
	for _, ch := range []<-chan int{a, b} {
		var got []int
		for v := range ch {
			got = append(got, v)
		}
		if len(got) != 3 || got[0] != 0 || got[2] != 2 {
			t.Errorf("got %v", got)
		}
	}
	if q.Send(context.Background(), 9) {
		t.Error("Send after Close succeeded")
	}
	if _, ok := <-q.Subscribe(); ok {
		t.Error("Subscribe after Close gave an open channel")
	}
	q.Close()
}

// A Send blocked on a full subscriber is released by ctx or by Close.
func TestQueueBlockedSend(t *testing.T) {
	q := NewQueue[int](0)
	_ = q.Subscribe() // never read
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var ok1, ok2 bool
	wg.Go(func() { ok1 = q.Send(ctx, 1) })
	cancel()
	wg.Wait()
	if ok1 {
		t.Error("Send on a cancelled context succeeded")
	}
	wg.Go(func() { ok2 = q.Send(context.Background(), 2) })
	q.Close() // must not deadlock with the blocked Send
	wg.Wait()
	if ok2 {
		t.Error("Send released by Close reported success")
	}
}
