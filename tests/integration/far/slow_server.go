// slow_server: an HTTP/1.1 serverB that is "far away": every request is answered
// -delay after it arrived (no netem on this machine), in order per connection, so
// pipelined requests are timed independently. One log line per request:
//
//	<arrival unix ns> <connection id> <method> <X-Seq value or ->
//
// X-Seq is set by the test client ("<client conn> <seq>"), so the log shows whether
// each client connection's requests reached serverB in capture order.
// -close-after N closes each connection after reading its Nth request without
// answering it (a serverB that closes mid-pipeline).
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type req struct {
	arrival time.Time
	close   bool
}

var (
	delay      = flag.Duration("delay", 5*time.Millisecond, "answer this long after arrival")
	addr       = flag.String("listen", "127.0.0.1:81", "address to listen on")
	logPath    = flag.String("log", "", "request log (empty: none)")
	closeAfter = flag.Int("close-after", 0, "close each connection at its Nth request, unanswered (0: never)")
	body       = []byte("far away\n")
	logw       *bufio.Writer
	logMu      sync.Mutex
	nconn      uint64
	nreq       uint64
)

func header(head []byte, name string) []byte {
	for _, l := range bytes.Split(head, []byte("\r\n"))[1:] {
		k, v, ok := bytes.Cut(l, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(k), []byte(name)) {
			return bytes.TrimSpace(v)
		}
	}
	return nil
}

func serve(c net.Conn, id uint64) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	q := make(chan req, 4096)
	done := make(chan struct{})
	go func() { // writer: answers in order, each at arrival + delay
		defer close(done)
		w := bufio.NewWriterSize(c, 64<<10)
		resp := []byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
		for rq := range q {
			if d := time.Until(rq.arrival.Add(*delay)); d > 0 {
				if w.Buffered() > 0 && w.Flush() != nil {
					return
				}
				time.Sleep(d)
			}
			if rq.close {
				w.Flush()
				return
			}
			w.Write(resp)
			if len(q) == 0 && w.Flush() != nil {
				return
			}
		}
		w.Flush()
	}()
	n := 0
	for {
		var head []byte
		for {
			l, err := r.ReadSlice('\n')
			if err != nil {
				close(q)
				<-done
				return
			}
			if len(head) == 0 && (len(l) == 2 || len(l) == 1) {
				continue // stray CRLF between requests
			}
			head = append(head, l...)
			if len(l) <= 2 {
				break
			}
		}
		now := time.Now()
		if cl := header(head, "content-length"); cl != nil {
			k, _ := strconv.Atoi(string(cl))
			if _, err := r.Discard(k); err != nil {
				close(q)
				<-done
				return
			}
		}
		n++
		atomic.AddUint64(&nreq, 1)
		seq := header(head, "x-seq")
		if seq == nil {
			seq = []byte("-")
		}
		if logw != nil {
			logMu.Lock()
			m, _, _ := bytes.Cut(head, []byte(" "))
			fmt.Fprintf(logw, "%d %d %s %s\n", now.UnixNano(), id, m, seq)
			logMu.Unlock()
		}
		last := *closeAfter > 0 && n >= *closeAfter
		q <- req{arrival: now, close: last}
		if last {
			close(q)
			<-done
			return
		}
	}
}

func main() {
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	if *logPath != "" {
		f, err := os.Create(*logPath)
		if err != nil {
			log.Fatal(err)
		}
		logw = bufio.NewWriterSize(f, 1<<20)
		go func() {
			for range time.Tick(200 * time.Millisecond) {
				logMu.Lock()
				logw.Flush()
				logMu.Unlock()
			}
		}()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		ln.Close()
		logMu.Lock()
		if logw != nil {
			logw.Flush()
		}
		fmt.Fprintf(os.Stderr, "slow_server: %d connections, %d requests\n", atomic.LoadUint64(&nconn), atomic.LoadUint64(&nreq))
		os.Exit(0)
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			select {} // closing: main exits from the signal goroutine
		}
		id := atomic.AddUint64(&nconn, 1)
		go serve(c, id)
	}
}
