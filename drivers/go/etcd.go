// etcd's clientv3/concurrency Mutex (etcd.io, "concurrency" package), as
// its docs use it:
//
//	s, _ := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
//	m := concurrency.NewMutex(s, "/my-lock/")
//	m.Lock(ctx)
//	... critical section ...
//	m.Unlock(ctx)
//
// Each client has its own session (a lease kept alive by the client's
// keep-alive goroutine) and so its own key under the lock's prefix: two
// Mutexes on one session share a key and would both think they hold. The
// session's TTL is the scenario's lease, rounded up to whole seconds (etcd
// leases count seconds). The key's revision when the lock is taken
// (Header().Revision) is the fencing token etcd's docs suggest. When a
// session ends (its lease expired or was revoked: Done() closes), the
// locks taken on it are gone, and the driver says `lost`, as an
// application watching Done() would learn. This is the recipe Jepsen's
// etcd 3.4.3 analysis judged unsafe under process pauses (jepsen.io,
// "etcd 3.4.3", 2020).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

type etcdOptions struct {
	// How long a request to etcd may take before it is given up (info).
	DialTimeoutMs int64 `json:"dial_timeout_ms"`
	// Overrides the session TTL (seconds); 0: the scenario's lease.
	SessionTTLS int `json:"session_ttl_s"`
}

type etcdClient struct {
	session *concurrency.Session
	held    map[string]*concurrency.Mutex
}

func init() { register("etcd-mutex", func() library { return &etcdMutex{} }) }

type etcdMutex struct {
	cli  *clientv3.Client
	opts etcdOptions
	out  *output
	mu   sync.Mutex
	// Each client's session and the locks it holds on it.
	clients map[uint64]*etcdClient
}

func (e *etcdMutex) name() string    { return "etcd-client-go" }
func (e *etcdMutex) version() string { return buildVersion("go.etcd.io/etcd/client/v3") }

func (e *etcdMutex) start(servers []server, raw json.RawMessage, out *output) error {
	e.opts = etcdOptions{DialTimeoutMs: 2000}
	if err := options(raw, &e.opts); err != nil {
		return fmt.Errorf("options: %w", err)
	}
	endpoints := make([]string, 0, len(servers))
	for _, s := range servers {
		endpoints = append(endpoints, "http://"+s.Addr)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: time.Duration(e.opts.DialTimeoutMs) * time.Millisecond,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, "lockbench-driver-start"); err != nil {
		return fmt.Errorf("etcd at %s: %w", strings.Join(endpoints, ","), err)
	}
	e.cli, e.out = cli, out
	e.clients = map[uint64]*etcdClient{}
	return nil
}

// sessionFor returns the client's live session, making a new one (a new
// lease) when it has none or its last one ended.
func (e *etcdMutex) sessionFor(ctx context.Context, client uint64, leaseMs int64) (*etcdClient, error) {
	e.mu.Lock()
	c := e.clients[client]
	e.mu.Unlock()
	if c != nil {
		select {
		case <-c.session.Done():
		default:
			return c, nil
		}
	}
	ttl := e.opts.SessionTTLS
	if ttl <= 0 {
		ttl = int((leaseMs + 999) / 1000)
		if ttl < 1 {
			ttl = 1
		}
	}
	// The lease is granted under the request's deadline; the session's
	// keep-alive then runs on the client's own context, for as long as
	// the session lives.
	lease, err := e.cli.Grant(ctx, int64(ttl))
	if err != nil {
		return nil, err
	}
	s, err := concurrency.NewSession(e.cli, concurrency.WithLease(lease.ID), concurrency.WithTTL(ttl))
	if err != nil {
		return nil, err
	}
	c = &etcdClient{session: s, held: map[string]*concurrency.Mutex{}}
	e.mu.Lock()
	e.clients[client] = c
	e.mu.Unlock()
	go func() {
		<-s.Done()
		e.mu.Lock()
		keys := make([]string, 0, len(c.held))
		for k := range c.held {
			keys = append(keys, k)
		}
		e.mu.Unlock()
		for _, k := range keys {
			e.out.lost(client, k, fmt.Sprintf("session (lease %x) ended", lease.ID))
		}
	}()
	return c, nil
}

func (e *etcdMutex) acquire(client uint64, key string, leaseMs, timeoutMs int64) (reply, error) {
	// No wait: one attempt (TryLock), under the request timeout.
	wait := time.Duration(timeoutMs) * time.Millisecond
	if timeoutMs <= 0 {
		wait = time.Duration(e.opts.DialTimeoutMs) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := e.sessionFor(ctx, client, leaseMs)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("no session within the timeout: %w", err)
		}
		return nil, err
	}
	m := concurrency.NewMutex(c.session, "/lockbench/"+key+"/")
	lock := m.Lock
	if timeoutMs <= 0 {
		lock = m.TryLock
	}
	if err := lock(ctx); err != nil {
		// Lock deletes its key when its wait fails; when the request
		// itself failed, the key may exist without our knowing: delete it
		// (a delete of a missing key succeeds), and only then is the
		// outcome definite.
		clean, cancelClean := context.WithTimeout(context.Background(), time.Second)
		defer cancelClean()
		if key := m.Key(); key != "" && key != "\x00" {
			if _, derr := e.cli.Delete(clean, key); derr != nil {
				return nil, fmt.Errorf("%v; cleaning up %q: %v", err, key, derr)
			}
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, concurrency.ErrLocked) {
			return nil, errBusy
		}
		return nil, fail("%v", err)
	}
	e.mu.Lock()
	c.held[key] = m
	e.mu.Unlock()
	return reply{"token": m.Key(), "fence": m.Header().Revision}, nil
}

func (e *etcdMutex) holder(client uint64, key string) (*etcdClient, *concurrency.Mutex) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.clients[client]
	if c == nil {
		return nil, nil
	}
	return c, c.held[key]
}

func (e *etcdMutex) release(client uint64, key, token string) (reply, error) {
	c, m := e.holder(client, key)
	if m == nil {
		return nil, fail("no lock object for this key")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Unlock deletes the key whatever its state: it cannot say whether the
	// lock was still ours.
	err := m.Unlock(ctx)
	e.mu.Lock()
	delete(c.held, key)
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return reply{}, nil
}

func (e *etcdMutex) renew(client uint64, key, token string, leaseMs int64) (reply, error) {
	// The session is the lease; its keep-alive renews it on its own.
	c, m := e.holder(client, key)
	if m == nil {
		return nil, fail("not held")
	}
	select {
	case <-c.session.Done():
		return nil, fail("the session ended")
	default:
	}
	return reply{}, nil
}
