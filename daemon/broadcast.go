package daemon

import "sync"

// broadcaster wakes every waiter at once: Wait returns a channel that is
// closed by the next Notify.
type broadcaster struct {
	mu sync.Mutex
	ch chan struct{}
}

func newBroadcaster() *broadcaster { return &broadcaster{ch: make(chan struct{})} }

// Wait returns a channel closed at the next Notify.
func (b *broadcaster) Wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

// Notify wakes the current waiters.
func (b *broadcaster) Notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.ch)
	b.ch = make(chan struct{})
}
