// client: load for test_replay_far.sh. -conns keep-alive connections to serverA send
// -rate requests/s in all for -duration, each connection at an even pace (closed loop:
// a late answer delays that connection's next request). Every request carries
// "X-Seq: <conn> <seq>" so serverB's log can show per-connection order. Prints one
// line: "sent=N ok=N errors=N rate=R/s cpu=S" (cpu: its own user+system seconds).
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	addr      = flag.String("addr", "127.0.0.1:80", "serverA")
	conns     = flag.Int("conns", 64, "client connections")
	rate      = flag.Float64("rate", 1000, "requests/s in all")
	duration  = flag.Duration("duration", 5*time.Second, "how long to send")
	path      = flag.String("path", "/far", "request-target prefix")
	postEvery = flag.Int("post-every", 0, "every Nth request of a connection is a POST (0: none)")
	sent      uint64
	ok        uint64
	errs      uint64
)

func readResp(r *bufio.Reader) (int, error) {
	status, cl := 0, 0
	for first := true; ; first = false {
		l, err := r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if first {
			f := bytes.Fields(l)
			if len(f) < 2 {
				return 0, fmt.Errorf("bad status line")
			}
			status, _ = strconv.Atoi(string(f[1]))
			continue
		}
		if len(l) <= 2 {
			break
		}
		if k, v, found := bytes.Cut(l, []byte(":")); found && bytes.EqualFold(bytes.TrimSpace(k), []byte("content-length")) {
			cl, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	_, err := r.Discard(cl)
	return status, err
}

func worker(id int, start time.Time, wg *sync.WaitGroup) {
	defer wg.Done()
	c, err := net.Dial("tcp", *addr)
	if err != nil {
		atomic.AddUint64(&errs, 1)
		fmt.Fprintf(os.Stderr, "conn %d: %v\n", id, err)
		return
	}
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	gap := time.Duration(float64(*conns) / *rate * float64(time.Second))
	end := start.Add(*duration)
	// stagger the connections over one gap so the load is even
	next := start.Add(gap * time.Duration(id) / time.Duration(*conns))
	buf := make([]byte, 0, 256)
	for seq := 0; ; seq++ {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		if !time.Now().Before(end) {
			return
		}
		next = next.Add(gap)
		buf = buf[:0]
		if *postEvery > 0 && seq%*postEvery == *postEvery-1 {
			b := fmt.Sprintf("post %d %d", id, seq)
			buf = fmt.Appendf(buf, "POST %s/c/%d/%d HTTP/1.1\r\nHost: serverA\r\nX-Seq: %d %d\r\nContent-Length: %d\r\n\r\n%s", *path, id, seq, id, seq, len(b), b)
		} else {
			buf = fmt.Appendf(buf, "GET %s/c/%d/%d HTTP/1.1\r\nHost: serverA\r\nX-Seq: %d %d\r\n\r\n", *path, id, seq, id, seq)
		}
		if _, err := c.Write(buf); err != nil {
			atomic.AddUint64(&errs, 1)
			fmt.Fprintf(os.Stderr, "conn %d: %v\n", id, err)
			return
		}
		atomic.AddUint64(&sent, 1)
		st, err := readResp(r)
		if err != nil {
			atomic.AddUint64(&errs, 1)
			fmt.Fprintf(os.Stderr, "conn %d: %v\n", id, err)
			return
		}
		if st == 200 {
			atomic.AddUint64(&ok, 1)
		}
	}
}

func main() {
	flag.Parse()
	var wg sync.WaitGroup
	start := time.Now().Add(50 * time.Millisecond)
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go worker(i, start, &wg)
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	fmt.Printf("sent=%d ok=%d errors=%d rate=%.0f/s cpu=%.2f\n", sent, ok, errs, float64(sent)/el, cpu.Seconds())
	if errs > 0 {
		os.Exit(1)
	}
}
