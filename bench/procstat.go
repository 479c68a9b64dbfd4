package bench

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// clockTicks is the kernel's USER_HZ on Linux; /proc reports CPU time in it.
const clockTicks = 100

// ProcStats is CPU time and memory of processes.
type ProcStats struct {
	CPUSeconds float64
	RSS        int64 // current resident set, summed
	PeakRSS    int64 // high-water resident set, summed
	cpu        map[int]float64
}

// readProcStats sums the stats of pids from /proc. Processes that are gone count as
// zero.
func readProcStats(pids []int) ProcStats {
	s := ProcStats{cpu: map[int]float64{}}
	for _, pid := range pids {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			// Fields after the command (which may hold spaces) start after ')'.
			fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
			if len(fields) > 12 {
				u, _ := strconv.ParseFloat(fields[11], 64)
				k, _ := strconv.ParseFloat(fields[12], 64)
				s.cpu[pid] = (u + k) / clockTicks
				s.CPUSeconds += s.cpu[pid]
			}
		}
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			for key, dst := range map[string]*int64{"VmRSS:": &s.RSS, "VmHWM:": &s.PeakRSS} {
				if rest, ok := strings.CutPrefix(line, key); ok {
					kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
					*dst += kb << 10
				}
			}
		}
		f.Close()
	}
	return s
}

// since is the CPU used between two readings by the processes alive at both (a
// killed node's time cannot be read after its death); memory is the later reading.
func (s ProcStats) since(before ProcStats) ProcStats {
	out := ProcStats{RSS: s.RSS, PeakRSS: s.PeakRSS}
	for pid, cpu := range s.cpu {
		if b, ok := before.cpu[pid]; ok {
			out.CPUSeconds += cpu - b
		}
	}
	out.CPUSeconds = math.Round(out.CPUSeconds*100) / 100 // clock ticks: hundredths
	return out
}
