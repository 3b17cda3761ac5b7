// The protocol side of lockbench's Go drivers (drivers/PROTOCOL.md): read
// JSON lines from stdin, run each client's requests on a goroutine of that
// client's own, in order, and write each reply as one JSON line on stdout.
// A library's file only says how it takes, gives back and extends a lock.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

const protocolVersion = 1

// A request from lockbench.
type request struct {
	Type      string `json:"type"`
	ID        uint64 `json:"id"`
	Client    uint64 `json:"client"`
	Key       string `json:"key"`
	Token     string `json:"token"`
	LeaseMs   int64  `json:"lease_ms"`
	TimeoutMs int64  `json:"timeout_ms"`
}

type server struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
	// The address the server's peers know it by, when it differs (a
	// Redis Cluster node's proxy): clients map it to Addr.
	Announced string `json:"announced,omitempty"`
}

type initMsg struct {
	Type     string          `json:"type"`
	Protocol int             `json:"protocol"`
	Host     int             `json:"host"`
	Servers  []server        `json:"servers"`
	Options  json.RawMessage `json:"options"`
}

// errFail: the operation definitely did not happen (reply `fail`).
type errFail struct{ msg string }

func (e errFail) Error() string { return e.msg }

func fail(format string, args ...any) error { return errFail{fmt.Sprintf(format, args...)} }

// errBusy: the lock stayed busy until the timeout (reply `fail`).
var errBusy = errFail{"busy: not acquired within the timeout"}

// reply is the body of an `ok`.
type reply map[string]any

// library is what a driver provides. Any error other than errFail is
// `info`: when in doubt, info.
type library interface {
	name() string
	version() string
	start(servers []server, options json.RawMessage, out *output) error
	acquire(client uint64, key string, leaseMs, timeoutMs int64) (reply, error)
	release(client uint64, key, token string) (reply, error)
	renew(client uint64, key, token string, leaseMs int64) (reply, error)
}

// output writes whole lines to stdout, one writer at a time.
type output struct {
	mu sync.Mutex
	w  io.Writer
}

func (o *output) send(msg map[string]any) {
	data, err := json.Marshal(msg)
	if err != nil {
		log.Printf("cannot encode %v: %v", msg, err)
		return
	}
	data = append(data, '\n')
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, err := o.w.Write(data); err != nil {
		// lockbench is gone: so is the reason to run.
		os.Exit(0)
	}
}

// lost tells lockbench that the library says a lock is gone.
func (o *output) lost(client uint64, key, reason string) {
	o.send(map[string]any{"type": "lost", "client": client, "key": key, "reason": reason})
}

// monotonicNs reads the machine's monotonic clock (CLOCK_MONOTONIC), which
// lockbench reads too; 0 if it cannot.
func monotonicNs() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return 0
	}
	return ts.Nano()
}

func serve(lib library, out *output, req request) {
	var body reply
	var err error
	// The library's own time, on the machine's monotonic clock (PROTOCOL.md).
	called := monotonicNs()
	switch req.Type {
	case "acquire":
		body, err = lib.acquire(req.Client, req.Key, req.LeaseMs, req.TimeoutMs)
	case "release":
		body, err = lib.release(req.Client, req.Key, req.Token)
	case "renew":
		body, err = lib.renew(req.Client, req.Key, req.Token, req.LeaseMs)
	default:
		log.Printf("unknown request type %q", req.Type)
		err = fmt.Errorf("unknown request type %q", req.Type)
	}
	t := [2]int64{called, monotonicNs()}
	if err != nil {
		kind := "info"
		if _, ok := err.(errFail); ok {
			kind = "fail"
		}
		out.send(map[string]any{"type": kind, "id": req.ID, "error": err.Error(), "t": t})
		return
	}
	msg := map[string]any{"type": "ok", "id": req.ID, "t": t}
	for k, v := range body {
		msg[k] = v
	}
	out.send(msg)
}

// run serves lockbench until it closes stdin.
func run(lib library) {
	log.SetFlags(log.Lmicroseconds)
	out := &output{w: os.Stdout}
	in := bufio.NewReaderSize(pollable(os.Stdin), 1<<16)
	first, err := in.ReadBytes('\n')
	if len(first) == 0 && err != nil {
		return
	}
	var init initMsg
	if err := json.Unmarshal(first, &init); err != nil || init.Type != "init" || init.Protocol != protocolVersion {
		out.send(map[string]any{"type": "error", "error": fmt.Sprintf("expected init of protocol %d, got %q", protocolVersion, first)})
		return
	}
	if err := lib.start(init.Servers, init.Options, out); err != nil {
		log.Printf("start: %v", err)
		out.send(map[string]any{"type": "error", "error": err.Error()})
		return
	}
	out.send(map[string]any{"type": "init_ok", "library": lib.name(), "version": lib.version()})
	inboxes := map[uint64]chan request{}
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 1 {
			var req request
			if jerr := json.Unmarshal(line, &req); jerr != nil {
				log.Printf("not JSON (%v): %q", jerr, line)
			} else {
				inbox, ok := inboxes[req.Client]
				if !ok {
					// A client's requests come one at a time; the buffer
					// only keeps the reader from waiting on a slow client.
					inbox = make(chan request, 4)
					inboxes[req.Client] = inbox
					go func() {
						for r := range inbox {
							serve(lib, out, r)
						}
					}()
				}
				inbox <- req
			}
		}
		if err != nil {
			return
		}
	}
}

// pollable makes a pipe's reads park the reading goroutine in Go's
// network poller instead of blocking its thread in read(2). A thread
// blocked in a system call keeps its scheduler slot until Go's monitor
// takes it back, so the client goroutine a request wakes would wait for
// that; parked in the poller, the reader gives its slot to that goroutine
// at once. Measured: the protocol's cost per request fell by about half
// (benches/driver_overhead.rs).
func pollable(f *os.File) *os.File {
	// Fd() puts the file in blocking mode: take it once, then unblock.
	fd := f.Fd()
	if err := syscall.SetNonblock(int(fd), true); err != nil {
		return f
	}
	return os.NewFile(fd, f.Name())
}

// options decodes a driver's options into v (absent options leave v's
// defaults).
func options(raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return json.Unmarshal(raw, v)
}

// held keeps each client's lock objects by key, from its acquire to its
// release: what a driver keeps between a client's calls. Safe for the
// goroutines that serve different clients.
type held[T any] struct {
	mu sync.Mutex
	by map[heldID]T
}

type heldID struct {
	client uint64
	key    string
}

func (h *held[T]) put(client uint64, key string, lock T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.by == nil {
		h.by = map[heldID]T{}
	}
	h.by[heldID{client, key}] = lock
}

// get returns the lock object, or a fail: lockbench asked for a lock the
// client does not hold.
func (h *held[T]) get(client uint64, key string) (T, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	lock, ok := h.by[heldID{client, key}]
	if !ok {
		return lock, fail("no lock object for this key")
	}
	return lock, nil
}

// take is get, and forgets it (a release).
func (h *held[T]) take(client uint64, key string) (T, error) {
	lock, err := h.get(client, key)
	if err == nil {
		h.mu.Lock()
		delete(h.by, heldID{client, key})
		h.mu.Unlock()
	}
	return lock, err
}
