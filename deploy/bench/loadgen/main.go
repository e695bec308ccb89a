// loadgen: a small open-loop HTTP/1.1 load generator for deploy/bench, standard
// library only. Debian's wrk has no fixed-rate mode (-R is wrk2), and a Lua pacing
// script cannot schedule sends independently of responses, so wrk's latencies suffer
// from coordinated omission. Here every request has an intended send time on a fixed
// schedule and its latency is measured from that time, so a server (or a capture tool
// beside it) that stalls shows up in p99 instead of silently lowering the offered rate.
//
//	loadgen load -url http[s]://H:P -mix get|post -rate R -duration D [-conns C]
//	    prints one JSON object: offered/served rates, errors, latency percentiles.
//	    -rate 0 is closed-loop: as fast as C connections go (the maximum).
//	loadgen load -url http://B:P -mix get|post -follow http://A/status [-duration MAX]
//	    follow mode: no schedule of its own; sends to -url as many requests as the
//	    followed nginx's stub_status counted since the start (its own polls taken
//	    off), so a serverB gets the requests serverA served, as they are served,
//	    without being in serverA's request path. SIGINT/SIGTERM: read the count
//	    once more, send what is still owed, print the JSON and exit.
//	loadgen exec -o FILE -- CMD ARGS...
//	    runs CMD, forwards SIGINT/SIGTERM to it, and writes its rusage (CPU seconds,
//	    peak RSS) as JSON to FILE when it exits; exits with CMD's status.
package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type config struct {
	host     string // host:port
	hostHdr  string
	mix      string
	rate     float64
	duration time.Duration
	conns    int
	minBody  int
	maxBody  int
	timeout  time.Duration
	seed     int64
	tls      bool // https:// (the certificate is not checked: a test one)
	follow   *follower
}

// follower turns the followed server's request count into send credit: one token
// per request that server has served since the start; the workers block on the
// channel (no polling of their own, so an idle follower costs nothing), and it is
// closed after the final count, which ends them once the owed requests are sent.
type follower struct {
	url      string
	every    time.Duration
	tokens   chan struct{}
	owed     int64 // tokens handed out so far
	polls    int64
	base     int64
	pollErrs int64
	client   *http.Client
}

// read returns the third line's third field of an nginx stub_status page: the
// requests counter (which counts the status request itself).
func (f *follower) read() (int64, error) {
	resp, err := f.client.Get(f.url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return 0, err
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 3 {
		return 0, fmt.Errorf("stub_status: %q", b)
	}
	fields := strings.Fields(lines[2])
	if len(fields) < 3 {
		return 0, fmt.Errorf("stub_status: %q", b)
	}
	return strconv.ParseInt(fields[2], 10, 64)
}

// poll sets target = requests counted since the first read minus our own reads
// (each read is counted by the server it reads).
func (f *follower) poll() {
	v, err := f.read()
	if err != nil {
		f.pollErrs++
		return
	}
	f.polls++
	for t := v - f.base - (f.polls - 1); f.owed < t; f.owed++ {
		f.tokens <- struct{}{}
	}
}

// take blocks until a request is owed and claims it; false once the final count
// has been read and every owed request taken.
func (f *follower) take() bool {
	_, ok := <-f.tokens
	return ok
}

type workerResult struct {
	sent, ok, non2xx, errs int64
	connects               int64
	bytesOut, bytesIn      int64
	lat                    []uint32 // microseconds from intended send time
	lastDone               time.Time
	firstErr               string
}

type result struct {
	Mix         string  `json:"mix"`
	OfferedRPS  float64 `json:"offered_rps"`
	Conns       int     `json:"conns"`
	DurationS   float64 `json:"duration_s"`
	ElapsedS    float64 `json:"elapsed_s"`
	Sent        int64   `json:"sent"`
	OK          int64   `json:"ok"`
	Non2xx      int64   `json:"non2xx"`
	Errors      int64   `json:"errors"`
	Connects    int64   `json:"connects"`
	ServedRPS   float64 `json:"served_rps"`
	AchievedRPS float64 `json:"achieved_rps"`
	MBOut       float64 `json:"mb_out"`
	P50ms       float64 `json:"p50_ms"`
	P90ms       float64 `json:"p90_ms"`
	P99ms       float64 `json:"p99_ms"`
	P999ms      float64 `json:"p999_ms"`
	Maxms       float64 `json:"max_ms"`
	FirstError  string  `json:"first_error,omitempty"`
	// follow mode: what the followed server counted (the requests owed), the status
	// reads made of it (each one counted there too), and this process's CPU
	Followed     int64   `json:"followed,omitempty"`
	FollowPolls  int64   `json:"follow_polls,omitempty"`
	FollowErrors int64   `json:"follow_errors,omitempty"`
	CPUS         float64 `json:"cpu_s,omitempty"`
}

// readResponse reads one HTTP/1.1 response head and body (Content-Length or
// chunked). Returns the status code and the bytes read, and whether the server
// will close the connection.
func readResponse(br *bufio.Reader) (int, int64, bool, error) {
	var n int64
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, n, true, err
	}
	n += int64(len(line))
	if len(line) < 12 || !strings.HasPrefix(string(line[:7]), "HTTP/1.") {
		return 0, n, true, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, n, true, fmt.Errorf("bad status %q", line)
	}
	clen := int64(-1)
	chunked, closing := false, false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return status, n, true, err
		}
		n += int64(len(line))
		s := strings.TrimRight(string(line), "\r\n")
		if s == "" {
			break
		}
		i := strings.IndexByte(s, ':')
		if i <= 0 {
			continue
		}
		name, val := strings.ToLower(s[:i]), strings.TrimSpace(s[i+1:])
		switch name {
		case "content-length":
			clen, _ = strconv.ParseInt(val, 10, 64)
		case "transfer-encoding":
			chunked = strings.Contains(strings.ToLower(val), "chunked")
		case "connection":
			closing = strings.EqualFold(val, "close")
		}
	}
	switch {
	case chunked:
		for {
			line, err = br.ReadSlice('\n')
			if err != nil {
				return status, n, true, err
			}
			n += int64(len(line))
			s := strings.TrimRight(string(line), "\r\n")
			if j := strings.IndexByte(s, ';'); j >= 0 {
				s = s[:j]
			}
			sz, perr := strconv.ParseInt(strings.TrimSpace(s), 16, 64)
			if perr != nil {
				return status, n, true, fmt.Errorf("bad chunk size %q", s)
			}
			if sz == 0 {
				for { // trailers up to the blank line
					line, err = br.ReadSlice('\n')
					if err != nil {
						return status, n, true, err
					}
					n += int64(len(line))
					if strings.TrimRight(string(line), "\r\n") == "" {
						return status, n, closing, nil
					}
				}
			}
			m, err := io.CopyN(io.Discard, br, sz+2)
			n += m
			if err != nil {
				return status, n, true, err
			}
		}
	case clen >= 0:
		m, err := io.CopyN(io.Discard, br, clen)
		n += m
		return status, n, closing, err
	default:
		m, err := io.Copy(io.Discard, br)
		n += m
		return status, n, true, err
	}
}

// bodySize draws a POST body size log-uniformly in [min, max]: small bodies are
// common, large ones rare, as in real upload traffic.
func bodySize(rng *rand.Rand, min, max int) int {
	if max <= min {
		return min
	}
	lmin, lmax := math.Log(float64(min)), math.Log(float64(max))
	v := int(math.Exp(lmin + rng.Float64()*(lmax-lmin)))
	if v < min {
		v = min
	}
	if v > max {
		v = max
	}
	return v
}

func worker(cfg *config, id int, start, end time.Time, body []byte, res *workerResult, wg *sync.WaitGroup) {
	defer wg.Done()
	rng := rand.New(rand.NewSource(cfg.seed + int64(id)*7919))
	var conn net.Conn
	var br *bufio.Reader
	var bw *bufio.Writer
	closeConn := func() {
		if conn != nil {
			conn.Close()
			conn = nil
		}
	}
	defer closeConn()
	var interval time.Duration
	if cfg.rate > 0 {
		interval = time.Duration(float64(cfg.conns) / cfg.rate * float64(time.Second))
	}
	fail := func(err error) {
		res.errs++
		if res.firstErr == "" {
			res.firstErr = err.Error()
		}
		closeConn()
	}
	for k := int64(0); ; k++ {
		intended := time.Now()
		if cfg.follow != nil {
			if !cfg.follow.take() {
				return
			}
			intended = time.Now()
		} else if interval > 0 {
			intended = start.Add(time.Duration(float64(interval) * (float64(k) + float64(id)/float64(cfg.conns))))
			if !intended.Before(end) {
				return
			}
			// Far behind schedule: the target cannot take the offered rate;
			// stop rather than run on long after the window.
			if time.Since(end) > 2*time.Second {
				return
			}
			if d := time.Until(intended); d > 0 {
				time.Sleep(d)
			}
		} else if !intended.Before(end) {
			return
		}
		if conn == nil {
			var c net.Conn
			var err error
			if cfg.tls {
				c, err = tls.DialWithDialer(&net.Dialer{Timeout: cfg.timeout}, "tcp", cfg.host,
					&tls.Config{InsecureSkipVerify: true})
			} else {
				c, err = net.DialTimeout("tcp", cfg.host, cfg.timeout)
			}
			res.connects++
			if err != nil {
				res.sent++
				fail(err)
				if interval == 0 {
					time.Sleep(10 * time.Millisecond)
				}
				continue
			}
			conn = c
			br = bufio.NewReaderSize(conn, 16384)
			bw = bufio.NewWriterSize(conn, 16384)
		}
		conn.SetDeadline(time.Now().Add(cfg.timeout))
		res.sent++
		var err error
		if cfg.mix == "post" {
			n := bodySize(rng, cfg.minBody, cfg.maxBody)
			off := rng.Intn(len(body) - n + 1)
			_, err = fmt.Fprintf(bw, "POST /upload?w=%d&k=%d HTTP/1.1\r\nHost: %s\r\nUser-Agent: st-loadgen\r\n"+
				"Content-Type: application/octet-stream\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
				id, k, cfg.hostHdr, n)
			if err == nil {
				_, err = bw.Write(body[off : off+n])
			}
			res.bytesOut += int64(n)
		} else {
			_, err = fmt.Fprintf(bw, "GET /api/items/%d?w=%d&q=bench HTTP/1.1\r\nHost: %s\r\nUser-Agent: st-loadgen\r\n"+
				"Accept: application/json\r\nAccept-Encoding: gzip\r\n\r\n", rng.Intn(100000), id, cfg.hostHdr)
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			fail(err)
			continue
		}
		status, nin, closing, err := readResponse(br)
		res.bytesIn += nin
		if err != nil {
			fail(err)
			continue
		}
		done := time.Now()
		res.lastDone = done
		if status >= 200 && status < 300 {
			res.ok++
		} else {
			res.non2xx++
		}
		us := done.Sub(intended).Microseconds()
		if us > math.MaxUint32 {
			us = math.MaxUint32
		}
		res.lat = append(res.lat, uint32(us))
		if closing || cfg.mix == "post" {
			// Let the server close first so TIME_WAIT stays on its side, not on
			// the client's ephemeral ports.
			conn.SetReadDeadline(time.Now().Add(cfg.timeout))
			io.Copy(io.Discard, br)
			closeConn()
		}
	}
}

func pct(s []uint32, p float64) float64 {
	if len(s) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(s)))) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return float64(s[i]) / 1000.0
}

func runLoad(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	u := fs.String("url", "", "target base URL, http://host:port")
	mix := fs.String("mix", "get", "get: keep-alive GETs; post: a new connection per POST")
	rate := fs.Float64("rate", 0, "requests per second; 0 = closed loop (maximum)")
	dur := fs.Duration("duration", 10*time.Second, "how long to send")
	conns := fs.Int("conns", 0, "connections (get) or concurrent workers (post); default 32 / 64")
	minBody := fs.Int("min-body", 1024, "smallest POST body")
	maxBody := fs.Int("max-body", 256*1024, "largest POST body")
	timeout := fs.Duration("timeout", 5*time.Second, "per-request timeout")
	seed := fs.Int64("seed", 1, "PRNG seed")
	followURL := fs.String("follow", "", "nginx stub_status URL: send as many requests as it counts (see above)")
	followEvery := fs.Duration("follow-every", 20*time.Millisecond, "how often -follow reads the count")
	fs.Parse(args)
	pu, err := url.Parse(*u)
	if err != nil || pu.Host == "" || (pu.Scheme != "http" && pu.Scheme != "https") {
		return fmt.Errorf("bad -url %q", *u)
	}
	if *mix != "get" && *mix != "post" {
		return fmt.Errorf("bad -mix %q", *mix)
	}
	if *minBody < 1 || *maxBody < *minBody {
		return errors.New("bad -min-body/-max-body")
	}
	cfg := &config{host: pu.Host, hostHdr: pu.Host, mix: *mix, rate: *rate, duration: *dur,
		conns: *conns, minBody: *minBody, maxBody: *maxBody, timeout: *timeout, seed: *seed,
		tls: pu.Scheme == "https"}
	if cfg.tls && pu.Port() == "" {
		cfg.host = pu.Host + ":443"
	}
	if *followURL != "" {
		if *followEvery <= 0 {
			return errors.New("bad -follow-every")
		}
		cfg.follow = &follower{url: *followURL, every: *followEvery, tokens: make(chan struct{}, 1<<16),
			client: &http.Client{Timeout: 2 * time.Second}}
		v, err := cfg.follow.read()
		if err != nil {
			return fmt.Errorf("-follow: %v", err)
		}
		cfg.follow.base, cfg.follow.polls = v, 1
	}
	if cfg.conns <= 0 {
		cfg.conns = 32
		if cfg.mix == "post" {
			cfg.conns = 64
		}
	}
	body := make([]byte, cfg.maxBody)
	rand.New(rand.NewSource(cfg.seed)).Read(body)
	res := make([]workerResult, cfg.conns)
	var wg sync.WaitGroup
	start := time.Now().Add(20 * time.Millisecond)
	end := start.Add(cfg.duration)
	for i := 0; i < cfg.conns; i++ {
		wg.Add(1)
		go worker(cfg, i, start, end, body, &res[i], &wg)
	}
	if f := cfg.follow; f != nil {
		sigs := make(chan os.Signal, 2)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		fmt.Fprintln(os.Stderr, "loadgen: following", f.url)
		tick := time.NewTicker(f.every)
	loop:
		for time.Now().Before(end) {
			select {
			case <-sigs:
				break loop
			case <-tick.C:
				f.poll()
			}
		}
		tick.Stop()
		f.poll() // the final count: everything served before the signal
		close(f.tokens)
	}
	wg.Wait()
	out := result{Mix: cfg.mix, OfferedRPS: cfg.rate, Conns: cfg.conns, DurationS: cfg.duration.Seconds()}
	var all []uint32
	last := end
	for i := range res {
		r := &res[i]
		out.Sent += r.sent
		out.OK += r.ok
		out.Non2xx += r.non2xx
		out.Errors += r.errs
		out.Connects += r.connects
		out.MBOut += float64(r.bytesOut) / 1e6
		all = append(all, r.lat...)
		if r.lastDone.After(last) {
			last = r.lastDone
		}
		if out.FirstError == "" {
			out.FirstError = r.firstErr
		}
	}
	if f := cfg.follow; f != nil {
		out.Followed, out.FollowPolls, out.FollowErrors = f.owed, f.polls, f.pollErrs
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
			out.CPUS = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		}
	}
	out.ElapsedS = last.Sub(start).Seconds()
	if out.ElapsedS > 0 {
		out.ServedRPS = float64(out.OK) / out.ElapsedS
		out.AchievedRPS = float64(out.OK+out.Non2xx) / out.ElapsedS
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	out.P50ms, out.P90ms, out.P99ms = pct(all, 0.50), pct(all, 0.90), pct(all, 0.99)
	out.P999ms, out.Maxms = pct(all, 0.999), pct(all, 1.0)
	enc := json.NewEncoder(os.Stdout)
	return enc.Encode(out)
}

type usage struct {
	CPUUserS  float64 `json:"cpu_user_s"`
	CPUSysS   float64 `json:"cpu_sys_s"`
	CPUS      float64 `json:"cpu_s"`
	MaxRSSKB  int64   `json:"maxrss_kb"`
	ExitCode  int     `json:"exit_code"`
	WallS     float64 `json:"wall_s"`
	Signalled string  `json:"signal,omitempty"`
}

func runExec(args []string) int {
	fs := flag.NewFlagSet("exec", flag.ExitOnError)
	outPath := fs.String("o", "", "write the child's rusage JSON here")
	fs.Parse(args)
	rest := fs.Args()
	if len(rest) == 0 || *outPath == "" {
		fmt.Fprintln(os.Stderr, "loadgen exec: usage: exec -o FILE -- CMD ARGS...")
		return 2
	}
	cmd := exec.Command(rest[0], rest[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen exec: %v\n", err)
		return 127
	}
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	u := usage{WallS: time.Since(t0).Seconds()}
	if ps := cmd.ProcessState; ps != nil {
		u.CPUUserS = ps.UserTime().Seconds()
		u.CPUSysS = ps.SystemTime().Seconds()
		u.CPUS = u.CPUUserS + u.CPUSysS
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			u.MaxRSSKB = ru.Maxrss
		}
		u.ExitCode = ps.ExitCode()
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			u.Signalled = ws.Signal().String()
		}
	} else if err != nil {
		u.ExitCode = 1
	}
	b, _ := json.Marshal(u)
	if werr := os.WriteFile(*outPath, append(b, '\n'), 0o644); werr != nil {
		fmt.Fprintf(os.Stderr, "loadgen exec: %v\n", werr)
	}
	if u.ExitCode < 0 {
		return 128
	}
	return u.ExitCode
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen load|exec ...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "load":
		if err := runLoad(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
			os.Exit(2)
		}
	case "exec":
		os.Exit(runExec(os.Args[2:]))
	default:
		fmt.Fprintf(os.Stderr, "loadgen: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}
