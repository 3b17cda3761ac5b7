package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"
)

// benchLoop is the library on its own: one client's acquire + release in a
// loop, in this process, through the same driver code lockbench runs but
// without the protocol (benches/driver_overhead.rs compares the two).
//
//	lockbench-go-driver bench LIBRARY SERVERS_JSON OPTIONS_JSON CYCLES
//
// prints one JSON line: {"cycles": n, "median_us": m, "mean_us": a}.
func benchLoop(lib library, args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("usage: bench LIBRARY SERVERS_JSON OPTIONS_JSON CYCLES")
	}
	var servers []server
	if err := json.Unmarshal([]byte(args[0]), &servers); err != nil {
		return fmt.Errorf("servers: %w", err)
	}
	cycles, err := strconv.Atoi(args[2])
	if err != nil || cycles < 1 {
		return fmt.Errorf("cycles: %q is not a positive number", args[2])
	}
	if err := lib.start(servers, json.RawMessage(args[1]), &output{w: os.Stderr}); err != nil {
		return err
	}
	times := make([]float64, 0, cycles)
	sum := 0.0
	for range cycles {
		t0 := time.Now()
		got, err := lib.acquire(0, "bench", 10000, 1000)
		if err != nil {
			return fmt.Errorf("acquire: %w", err)
		}
		token, _ := got["token"].(string)
		if _, err := lib.release(0, "bench", token); err != nil {
			return fmt.Errorf("release: %w", err)
		}
		us := float64(time.Since(t0).Nanoseconds()) / 1e3
		times = append(times, us)
		sum += us
	}
	slices.Sort(times)
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"cycles": cycles, "median_us": times[len(times)/2], "mean_us": sum / float64(cycles),
	})
}
