package par

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

func TestDoCallsEveryIndexOnceWithinTheBound(t *testing.T) {
	var calls [100]atomic.Int32
	var running, peak atomic.Int32
	err := Do(context.Background(), len(calls), 3, func(i int) error {
		if r := running.Add(1); r > peak.Load() {
			peak.Store(r)
		}
		defer running.Add(-1)
		calls[i].Add(1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range calls {
		if n := calls[i].Load(); n != 1 {
			t.Errorf("index %d called %d times", i, n)
		}
	}
	if p := peak.Load(); p > 3 {
		t.Errorf("%d calls at once, want at most 3", p)
	}
}

func TestDoReturnsTheLowestFailedIndexAndStops(t *testing.T) {
	var started atomic.Int32
	err := Do(context.Background(), 1000, 1, func(i int) error {
		started.Add(1)
		if i == 5 || i == 7 {
			return errors.New("boom " + string(rune('0'+i)))
		}
		return nil
	})
	if err == nil || err.Error() != "boom 5" {
		t.Fatalf("err = %v, want boom 5", err)
	}
	if n := started.Load(); n != 6 {
		t.Errorf("%d calls started, want 6: none after the failure", n)
	}
}

func TestDoStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var started atomic.Int32
	err := Do(ctx, 1000, 1, func(i int) error {
		if started.Add(1) == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || started.Load() != 3 {
		t.Fatalf("err %v after %d calls, want canceled after 3", err, started.Load())
	}
	if err := Do(ctx, 0, 1, func(int) error { return nil }); err != nil {
		t.Errorf("nothing to do: %v", err)
	}
}
