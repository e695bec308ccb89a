// slow_server: an HTTP/1.1 serverB that is "far away": every request is answered
// -delay after it arrived (no netem on this machine), in order per connection, so
// pipelined requests are timed independently. One log line per request:
//
//	<arrival unix ns> <connection id> <method> <X-Seq value or ->
//
// X-Seq is set by the test client ("<client conn> <seq>"), so the log shows whether
// each client connection's requests reached serverB in capture order. The arrival
// time is the kernel's receive timestamp (SO_TIMESTAMPNS) of the read that brought
// the request's last byte, taken when the sender's write put the packet on lo, so
// requests written one after another on different connections keep their order
// here whatever order this server's goroutines run in. The last line, written at
// SIGTERM, is "# connections=N peak_open=N requests=N" (peak_open: most
// connections open at once).
// -close-after N closes each connection after reading its Nth request without
// answering it (a serverB that closes mid-pipeline).
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
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
	peakOpen   int64
	openMu     sync.Mutex
	openConns  = map[uint64]syscall.RawConn{}
)

// tcpState is the kernel's TCP state of a connection (TCP_INFO's first byte).
func tcpState(rc syscall.RawConn) byte {
	var info [8]byte
	n := uint32(len(info))
	rc.Control(func(fd uintptr) {
		syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&n)), 0)
	})
	return info[0]
}

// opened counts a new connection: the open ones are those still established in the
// kernel, so one the client has already closed (its FIN in, this server's reader
// not yet run) is not counted, whatever order the goroutines run in. The count only
// grows here, so the peak is seen here.
func opened(id uint64, rc syscall.RawConn) {
	const tcpEstablished = 1
	openMu.Lock()
	defer openMu.Unlock()
	openConns[id] = rc
	var o int64
	for _, c := range openConns {
		if tcpState(c) == tcpEstablished {
			o++
		}
	}
	if o > peakOpen {
		peakOpen = o
	}
}

func closed(id uint64) {
	openMu.Lock()
	delete(openConns, id)
	openMu.Unlock()
}

// tsReader reads a TCP connection with recvmsg and remembers the kernel receive
// timestamp of each read, so a request can be given the time its last byte arrived.
type tsReader struct {
	rc     syscall.RawConn
	oob    []byte
	total  int64   // bytes read so far
	chunks []chunk // reads whose bytes are not all consumed yet
}

type chunk struct {
	end int64 // offset just past the read's last byte
	ns  int64
}

func (t *tsReader) Read(p []byte) (int, error) {
	var n, oobn int
	var err error
	rerr := t.rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, err = syscall.Recvmsg(int(fd), p, t.oob, 0)
		return err != syscall.EAGAIN
	})
	if rerr != nil {
		return 0, rerr
	}
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, io.EOF
	}
	ns := time.Now().UnixNano() // no timestamp came: the time of reading
	if msgs, perr := syscall.ParseSocketControlMessage(t.oob[:oobn]); perr == nil {
		for _, m := range msgs {
			if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SO_TIMESTAMPNS && len(m.Data) >= 16 {
				ts := (*syscall.Timespec)(unsafe.Pointer(&m.Data[0]))
				ns = ts.Nano()
			}
		}
	}
	t.total += int64(n)
	t.chunks = append(t.chunks, chunk{t.total, ns})
	return n, nil
}

// at returns the receive time of the byte just before offset off (off > 0).
func (t *tsReader) at(off int64) int64 {
	for len(t.chunks) > 1 && t.chunks[0].end < off {
		t.chunks = t.chunks[1:]
	}
	if len(t.chunks) == 0 {
		return time.Now().UnixNano()
	}
	return t.chunks[0].ns
}

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
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return
	}
	opened(id, rc)
	tr := &tsReader{rc: rc, oob: make([]byte, 128)}
	r := bufio.NewReaderSize(tr, 64<<10)
	var used int64 // bytes of the stream parsed so far
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
	end := func() {
		closed(id)
		close(q)
		<-done
	}
	n := 0
	for {
		var head []byte
		for {
			l, err := r.ReadSlice('\n')
			if err != nil {
				end()
				return
			}
			used += int64(len(l))
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
				end()
				return
			}
			used += int64(k)
		}
		rx := tr.at(used)
		n++
		atomic.AddUint64(&nreq, 1)
		seq := header(head, "x-seq")
		if seq == nil {
			seq = []byte("-")
		}
		if logw != nil {
			logMu.Lock()
			m, _, _ := bytes.Cut(head, []byte(" "))
			fmt.Fprintf(logw, "%d %d %s %s\n", rx, id, m, seq)
			logMu.Unlock()
		}
		last := *closeAfter > 0 && n >= *closeAfter
		q <- req{arrival: now, close: last}
		if last {
			end()
			return
		}
	}
}

func main() {
	flag.Parse()
	// accepted connections inherit the option from the listener
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", *addr)
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
		sum := fmt.Sprintf("# connections=%d peak_open=%d requests=%d\n", atomic.LoadUint64(&nconn),
			func() int64 { openMu.Lock(); defer openMu.Unlock(); return peakOpen }(), atomic.LoadUint64(&nreq))
		logMu.Lock()
		if logw != nil {
			logw.WriteString(sum)
			logw.Flush()
		}
		fmt.Fprintf(os.Stderr, "slow_server: %s", sum[2:])
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
