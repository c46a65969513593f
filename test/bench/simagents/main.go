// Simulated agents for the probe-scale benchmark (test/bench/probescale.ts), as one small static
// program so that answering thousands of probes a second costs little next to the schedulers
// being measured: the TypeScript simulator it replaces (one Node process, 1,000 UDP sockets and
// 1,000 HTTP servers) saturated a core at 500 nodes, and the bench measured it instead.
//
// Agent i (0-based) is node <prefix><i> on 127.77.<i/250>.<1+i%250> (test/bench/_simagents.ts
// simAddress), every one on the same port number, answering:
//   - UDP probes as agent/proberesponder.ts does (wire format: api/probewire.ts): a well-formed
//     probe datagram gets an answer echoing its sequence, flags ok, the node's name; anything
//     else is dropped;
//   - HTTP GET /healthz as agent/agent.ts healthz() does: 200 {"ok":true,"node":...,"draining":false}.
//
// Probes are counted by the scheduler identity they carry (UDP: the datagram's identity; HTTP:
// the x-ipcontroller-probe header). Prints "ready" once every endpoint listens, one JSON line
// {"<identity>":{"http":n,"udp":n}} on SIGUSR2, and exits on SIGTERM or when stdin ends.
//
// Usage: simagents <count> <port> [prefix=ps-]. Standard library only; built and cached by build.sh.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

const (
	wireVersion = 1
	kindProbe   = 1
	kindAnswer  = 2
	flagOK      = 0x01
)

var magic = []byte("IPCP")

type tally struct {
	HTTP int64 `json:"http"`
	UDP  int64 `json:"udp"`
}

type counts struct {
	mu sync.Mutex
	by map[string]*tally
}

func (c *counts) add(identity string, udp bool) {
	c.mu.Lock()
	t := c.by[identity]
	if t == nil {
		t = &tally{}
		c.by[identity] = t
	}
	if udp {
		t.UDP++
	} else {
		t.HTTP++
	}
	c.mu.Unlock()
}

func (c *counts) json() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out, _ := json.Marshal(c.by)
	return out
}

// decodeProbe reads a probe datagram (api/probewire.ts decodeProbe): the header, then one length
// byte and exactly that many bytes of identity. ok is false for anything else.
func decodeProbe(b []byte) (seq uint32, identity string, ok bool) {
	if len(b) < 11 || !bytes.Equal(b[0:4], magic) || b[4] != wireVersion || b[5] != kindProbe {
		return 0, "", false
	}
	n := int(b[10])
	if len(b) != 11+n {
		return 0, "", false
	}
	return binary.BigEndian.Uint32(b[6:10]), string(b[11:]), true
}

// appendAnswer writes an answer datagram (api/probewire.ts encodeAnswer) with ok set, not draining.
func appendAnswer(dst []byte, seq uint32, node string) []byte {
	dst = append(dst, magic...)
	dst = append(dst, wireVersion, kindAnswer)
	dst = binary.BigEndian.AppendUint32(dst, seq)
	dst = append(dst, flagOK, byte(len(node)))
	return append(dst, node...)
}

func address(i int) string {
	return fmt.Sprintf("127.77.%d.%d", i/250, 1+i%250)
}

func serveUDP(conn *net.UDPConn, node string, c *counts) {
	in := make([]byte, 2048)
	out := make([]byte, 0, 12+len(node))
	for {
		n, from, err := conn.ReadFromUDPAddrPort(in)
		if err != nil {
			return
		}
		seq, identity, ok := decodeProbe(in[:n])
		if !ok {
			continue
		}
		c.add(identity, true)
		out = appendAnswer(out[:0], seq, node)
		_, _ = conn.WriteToUDPAddrPort(out, from)
	}
}

func healthz(node string, c *counts) http.Handler {
	// The same bytes as the agent's JSON.stringify({ ok, node, draining }): fields in that order.
	body, _ := json.Marshal(struct {
		OK       bool   `json:"ok"`
		Node     string `json:"node"`
		Draining bool   `json:"draining"`
	}{true, node, false})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if who, ok := r.Header["X-Ipcontroller-Probe"]; ok && len(who) > 0 {
			c.add(who[0], false)
		}
		w.Header().Set("content-type", "application/json")
		w.Header().Set("content-length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
}

func listen(count, port int, prefix string, c *counts) error {
	for i := 0; i < count; i++ {
		node := prefix + strconv.Itoa(i)
		ip := net.ParseIP(address(i))
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip, Port: port})
		if err != nil {
			return err
		}
		go serveUDP(conn, node, c)
		ln, err := net.Listen("tcp4", net.JoinHostPort(ip.String(), strconv.Itoa(port)))
		if err != nil {
			return err
		}
		server := &http.Server{Handler: healthz(node, c), IdleTimeout: 5 * time.Second, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = server.Serve(ln) }()
	}
	return nil
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: simagents <count> <port> [prefix]")
		os.Exit(2)
	}
	count, err1 := strconv.Atoi(os.Args[1])
	port, err2 := strconv.Atoi(os.Args[2])
	if err1 != nil || err2 != nil || count < 0 || count > 250*256 || port <= 0 || port > 65535 {
		fmt.Fprintln(os.Stderr, "simagents: count and port must be numbers in range")
		os.Exit(2)
	}
	prefix := "ps-"
	if len(os.Args) > 3 {
		prefix = os.Args[3]
	}
	c := &counts{by: map[string]*tally{}}
	out := bufio.NewWriter(os.Stdout)
	var outMu sync.Mutex
	say := func(line []byte) {
		outMu.Lock()
		_, _ = out.Write(append(line, '\n'))
		_ = out.Flush()
		outMu.Unlock()
	}
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT)
	if err := listen(count, port, prefix, c); err != nil {
		fmt.Fprintln(os.Stderr, "simagents:", err)
		os.Exit(1)
	}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	say([]byte("ready"))
	for s := range signals {
		if s == syscall.SIGUSR2 {
			say(c.json())
			continue
		}
		os.Exit(0)
	}
}
