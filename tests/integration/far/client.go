// client: load for test_replay_far.sh. -conns keep-alive connections to serverA send
// -rate requests/s in all for -duration, each connection at an even pace. By default
// closed loop: a late answer delays that connection's next request, so on a busy
// machine the rate offered falls with serverA's round trip. -pipeline N is open loop:
// each connection sends on its fixed schedule whether or not the answers are back
// (HTTP/1.1 pipelining, requests that fell due together in one write), up to N
// unanswered; only a full window holds a request back. Every request carries
// "X-Seq: <conn> <seq>" and the target PATH/c/<conn>/<seq>, so serverB's and serverA's
// logs show per-connection order. Prints one line: "sent=N ok=N errors=N rate=R/s
// cpu=S late=N max_lag=Dms" (cpu: its own user+system seconds; late: requests sent
// more than 5 ms after their scheduled time, max_lag the worst).
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
	pipeline  = flag.Int("pipeline", 0, "open loop with up to N unanswered requests per connection (0: closed loop)")
	sent      uint64
	ok        uint64
	errs      uint64
	late      uint64
	maxLag    int64
	lastSend  int64 // unix ns of the last write
)

func sentAt() {
	now := time.Now().UnixNano()
	for m := atomic.LoadInt64(&lastSend); now > m && !atomic.CompareAndSwapInt64(&lastSend, m, now); m = atomic.LoadInt64(&lastSend) {
	}
}

// lagged records how far behind its schedule a request went out.
func lagged(d time.Duration) {
	if d > 5*time.Millisecond {
		atomic.AddUint64(&late, 1)
	}
	for m := atomic.LoadInt64(&maxLag); int64(d) > m && !atomic.CompareAndSwapInt64(&maxLag, m, int64(d)); m = atomic.LoadInt64(&maxLag) {
	}
}

func request(buf []byte, id, seq int) []byte {
	if *postEvery > 0 && seq%*postEvery == *postEvery-1 {
		b := fmt.Sprintf("post %d %d", id, seq)
		return fmt.Appendf(buf, "POST %s/c/%d/%d HTTP/1.1\r\nHost: serverA\r\nX-Seq: %d %d\r\nContent-Length: %d\r\n\r\n%s", *path, id, seq, id, seq, len(b), b)
	}
	return fmt.Appendf(buf, "GET %s/c/%d/%d HTTP/1.1\r\nHost: serverA\r\nX-Seq: %d %d\r\n\r\n", *path, id, seq, id, seq)
}

func connErr(id int, err error) {
	atomic.AddUint64(&errs, 1)
	fmt.Fprintf(os.Stderr, "conn %d: %v\n", id, err)
}

// openWorker: the open-loop connection. The writer sends what is due, the reader
// takes the answers; a slot of the window is held from send to answer.
func openWorker(id int, start time.Time, wg *sync.WaitGroup) {
	defer wg.Done()
	c, err := net.Dial("tcp", *addr)
	if err != nil {
		connErr(id, err)
		return
	}
	defer c.Close()
	window := make(chan struct{}, *pipeline)
	dead := make(chan struct{})
	var closing atomic.Bool
	go func() {
		defer close(dead)
		r := bufio.NewReaderSize(c, 64<<10)
		for {
			st, err := readResp(r)
			if err != nil {
				if !closing.Load() {
					connErr(id, err)
				}
				return
			}
			if st == 200 {
				atomic.AddUint64(&ok, 1)
			}
			<-window
		}
	}()
	gap := time.Duration(float64(*conns) / *rate * float64(time.Second))
	end := start.Add(*duration)
	first := start.Add(gap * time.Duration(id) / time.Duration(*conns))
	buf := make([]byte, 0, 4096)
	seq := 0
	for {
		due := first.Add(gap * time.Duration(seq))
		if !due.Before(end) {
			break
		}
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		buf = buf[:0]
		n := 0
		// everything due by now goes in one write, as far as the window allows
		for ; n < 64; n++ {
			due = first.Add(gap * time.Duration(seq))
			if !due.Before(end) || (n > 0 && time.Now().Before(due)) {
				break
			}
			if n > 0 && len(window) == cap(window) {
				break
			}
			select {
			case window <- struct{}{}:
			case <-dead:
				return
			}
			lagged(time.Since(due))
			buf = request(buf, id, seq)
			seq++
		}
		if _, err := c.Write(buf); err != nil {
			connErr(id, err)
			return
		}
		atomic.AddUint64(&sent, uint64(n))
		sentAt()
	}
	// every answer back (the window empty), or give up after 10 s
	deadline := time.After(10 * time.Second)
	for i := 0; i < cap(window); i++ {
		select {
		case window <- struct{}{}:
		case <-dead:
			return
		case <-deadline:
			connErr(id, fmt.Errorf("%d answers missing", len(window)))
			return
		}
	}
	closing.Store(true)
}

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
		lagged(time.Since(next))
		next = next.Add(gap)
		buf = request(buf[:0], id, seq)
		if _, err := c.Write(buf); err != nil {
			atomic.AddUint64(&errs, 1)
			fmt.Fprintf(os.Stderr, "conn %d: %v\n", id, err)
			return
		}
		atomic.AddUint64(&sent, 1)
		sentAt()
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
		if *pipeline > 0 {
			go openWorker(i, start, &wg)
		} else {
			go worker(i, start, &wg)
		}
	}
	wg.Wait()
	// the rate offered: over the run's duration, or longer if sending ran late
	el := (*duration).Seconds()
	if d := time.Duration(lastSend - start.UnixNano()).Seconds(); d > el {
		el = d
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	fmt.Printf("sent=%d ok=%d errors=%d rate=%.0f/s cpu=%.2f late=%d max_lag=%.1fms\n", sent, ok, errs,
		float64(sent)/el, cpu.Seconds(), late, float64(maxLag)/1e6)
	if errs > 0 {
		os.Exit(1)
	}
}
