package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"time"
)

// benchLoop is the library on its own: one client's acquire + release in a
// loop, in this process, through the same driver code lockbench runs but
// without the protocol (benches/driver_overhead.rs compares the two).
//
//	lockbench-go-driver bench LIBRARY SERVERS_JSON OPTIONS_JSON CYCLES [paced]
//
// prints one JSON line: {"cycles": n, "median_us": m, "mean_us": a}, a
// cycle's time being its two calls'. paced: before each call the loop
// waits, as a driver waits for its next request: it writes "." on stdout
// and blocks until one byte comes back on stdin. The environment's WARMUP
// cycles (default 0) run first, untimed.
func benchLoop(lib library, args []string) error {
	paced := len(args) == 4 && args[3] == "paced"
	if len(args) != 3 && !paced {
		return fmt.Errorf("usage: bench LIBRARY SERVERS_JSON OPTIONS_JSON CYCLES [paced]")
	}
	one := make([]byte, 1)
	wait := func() error {
		if !paced {
			return nil
		}
		if _, err := os.Stdout.Write([]byte(".")); err != nil {
			return err
		}
		_, err := io.ReadFull(os.Stdin, one)
		return err
	}
	var servers []server
	if err := json.Unmarshal([]byte(args[0]), &servers); err != nil {
		return fmt.Errorf("servers: %w", err)
	}
	cycles, err := strconv.Atoi(args[2])
	if err != nil || cycles < 1 {
		return fmt.Errorf("cycles: %q is not a positive number", args[2])
	}
	warmup := 0
	if w := os.Getenv("WARMUP"); w != "" {
		if warmup, err = strconv.Atoi(w); err != nil || warmup < 0 {
			return fmt.Errorf("WARMUP: %q is not a number of cycles", w)
		}
	}
	if err := lib.start(servers, json.RawMessage(args[1]), &output{w: os.Stderr}); err != nil {
		return err
	}
	times := make([]float64, 0, cycles)
	sum := 0.0
	for i := range warmup + cycles {
		if err := wait(); err != nil {
			return fmt.Errorf("paced: %w", err)
		}
		t0 := time.Now()
		got, err := lib.acquire(0, "bench", 10000, 1000)
		if err != nil {
			return fmt.Errorf("acquire: %w", err)
		}
		took := time.Since(t0)
		token, _ := got["token"].(string)
		if err := wait(); err != nil {
			return fmt.Errorf("paced: %w", err)
		}
		t2 := time.Now()
		if _, err := lib.release(0, "bench", token); err != nil {
			return fmt.Errorf("release: %w", err)
		}
		us := float64((took + time.Since(t2)).Nanoseconds()) / 1e3
		if i >= warmup {
			times = append(times, us)
			sum += us
		}
	}
	slices.Sort(times)
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"cycles": cycles, "median_us": times[len(times)/2], "mean_us": sum / float64(cycles),
	})
}
