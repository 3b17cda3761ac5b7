// go-redsync's Mutex (github.com/go-redsync/redsync, README), Redlock over
// independent Redis masters through go-redis:
//
//	pools := []redis.Pool{goredis.NewPool(client1), ...}
//	rs := redsync.New(pools...)
//	mutex := rs.NewMutex("my-global-mutex", redsync.WithExpiry(lease))
//	mutex.Lock()
//	... critical section ...
//	mutex.Unlock()
//
// The expiry is the scenario's lease. redsync retries a busy lock `tries`
// times (default 32) with a random 50-250 ms delay; here it retries until
// the acquire's timeout instead (LockContext with a deadline), its delays
// left at their defaults. The lock's value is redsync's random token; no
// fencing token. The validity it reports (Until) is the lease minus the
// time the acquire took and the drift allowance. On a Redis Cluster it is
// one pool over go-redis's ClusterClient (goredis.NewPool takes any
// go-redis UniversalClient): one lock in the cluster, not Redlock's
// independent masters.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	goredislib "github.com/redis/go-redis/v9"
)

type redsyncOptions struct {
	// go-redis's read and write timeouts.
	SocketTimeoutMs int64 `json:"socket_timeout_ms"`
}

func init() { register("redsync", func() library { return &redsyncLock{} }) }

type redsyncLock struct {
	rs   *redsync.Redsync
	held held[*redsync.Mutex]
}

func (r *redsyncLock) name() string    { return "redsync" }
func (r *redsyncLock) version() string { return buildVersion("github.com/go-redsync/redsync/v4") }

func (r *redsyncLock) start(servers []server, raw json.RawMessage, out *output) error {
	opts := redsyncOptions{SocketTimeoutMs: 1000}
	if err := options(raw, &opts); err != nil {
		return fmt.Errorf("options: %w", err)
	}
	timeout := time.Duration(opts.SocketTimeoutMs) * time.Millisecond
	if cluster := clusterNodes(servers); len(cluster) > 0 {
		client, err := clusterClient(cluster, timeout)
		if err != nil {
			return err
		}
		r.rs = redsync.New(goredis.NewPool(client))
		return nil
	}
	pools := make([]redis.Pool, 0, len(servers))
	for _, s := range servers {
		client := goredislib.NewClient(&goredislib.Options{
			Addr:         s.Addr,
			DialTimeout:  timeout,
			ReadTimeout:  timeout,
			WriteTimeout: timeout,
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := client.Ping(ctx).Err()
		cancel()
		if err != nil {
			return fmt.Errorf("redis at %s: %w", s.Addr, err)
		}
		pools = append(pools, goredis.NewPool(client))
	}
	r.rs = redsync.New(pools...)
	return nil
}

// The servers of a Redis Cluster (named redis-cluster-N), if these are.
func clusterNodes(servers []server) []server {
	var nodes []server
	for _, s := range servers {
		if strings.HasPrefix(s.Name, "redis-cluster-") {
			nodes = append(nodes, s)
		}
	}
	return nodes
}

// go-redis's ClusterClient over a Redis Cluster's nodes: it routes each
// command to the primary of its key's slot and follows MOVED. The nodes
// name each other (and CLUSTER SLOTS names them) by their announced
// addresses; the dialer connects to where each listens instead.
func clusterClient(nodes []server, timeout time.Duration) (*goredislib.ClusterClient, error) {
	real := map[string]string{}
	addrs := make([]string, 0, len(nodes))
	for _, n := range nodes {
		addrs = append(addrs, n.Addr)
		if n.Announced != "" {
			real[n.Announced] = n.Addr
		}
	}
	dialer := &net.Dialer{Timeout: timeout}
	client := goredislib.NewClusterClient(&goredislib.ClusterOptions{
		Addrs: addrs,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if to, ok := real[addr]; ok {
				addr = to
			}
			return dialer.DialContext(ctx, network, addr)
		},
		DialTimeout:  timeout,
		ReadTimeout:  timeout,
		WriteTimeout: timeout,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("redis cluster at %s: %w", strings.Join(addrs, ","), err)
	}
	return client, nil
}

func (r *redsyncLock) acquire(client uint64, key string, leaseMs, timeoutMs int64) (reply, error) {
	m := r.rs.NewMutex(key,
		redsync.WithExpiry(time.Duration(leaseMs)*time.Millisecond),
		redsync.WithTries(math.MaxInt32))
	var err error
	if timeoutMs <= 0 {
		// No wait: one attempt, as TryLock makes it (a deadline already
		// passed would fail every master's request before it is sent).
		err = m.TryLockContext(context.Background())
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeoutMs)*time.Millisecond)
		defer cancel()
		err = m.LockContext(ctx)
	}
	if err != nil {
		// A failed attempt releases what it took on every master before
		// it tries again or gives up; a master that did not answer may
		// still hold its key until the expiry, but not a majority.
		var taken *redsync.ErrTaken
		if errors.Is(err, redsync.ErrFailed) || errors.As(err, &taken) {
			return nil, errBusy
		}
		return nil, err
	}
	r.held.put(client, key, m)
	lease := time.Until(m.Until()).Milliseconds()
	if lease < 0 {
		lease = 0
	}
	return reply{"token": m.Value(), "lease_ms": lease}, nil
}

func (r *redsyncLock) release(client uint64, key, token string) (reply, error) {
	m, err := r.held.take(client, key)
	if err != nil {
		return nil, err
	}
	ok, err := m.Unlock()
	if ok {
		return reply{}, nil
	}
	if errors.Is(err, redsync.ErrLockAlreadyExpired) {
		return reply{"was_held": false}, nil
	}
	return nil, fmt.Errorf("unlock reached no majority: %v", err)
}

func (r *redsyncLock) renew(client uint64, key, token string, leaseMs int64) (reply, error) {
	m, err := r.held.get(client, key)
	if err != nil {
		return nil, err
	}
	ok, err := m.Extend()
	if !ok {
		if errors.Is(err, redsync.ErrExtendFailed) {
			return nil, fail("%v", err)
		}
		return nil, fmt.Errorf("extend reached no majority: %v", err)
	}
	return reply{"lease_ms": time.Until(m.Until()).Milliseconds()}, nil
}
