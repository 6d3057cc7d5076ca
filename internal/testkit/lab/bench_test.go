package lab

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkStartClose measures a lab's start and close for the demo's size
// and the apply benchmark's (50 devices). Run with -benchtime=1x.
func BenchmarkStartClose(b *testing.B) {
	for _, n := range []int{3, 50} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			var start, stop time.Duration
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				l := ForTest(b, Options{Devices: n, Nodes: 4})
				t1 := time.Now()
				// Every device runs its haproxy master.
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				for j, d := range l.Devices {
					if out, err := l.Exec(ctx, j+1, "test", "-S", d.StateDir+"/master.sock"); err != nil {
						b.Fatalf("%s: %v %s", d.Name, err, out)
					}
				}
				cancel()
				t2 := time.Now()
				if err := l.Close(); err != nil {
					b.Fatal(err)
				}
				start += t1.Sub(t0)
				stop += time.Since(t2)
			}
			b.ReportMetric(start.Seconds()/float64(b.N), "start-s")
			b.ReportMetric(stop.Seconds()/float64(b.N), "close-s")
		})
	}
}
