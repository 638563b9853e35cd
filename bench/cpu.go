package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the kernel's USER_HZ for /proc/<pid>/stat (100 on Linux).
const clockTicks = 100

// procStat returns the fields of /proc/<pid>/stat after the command name
// (Linux): f[0] is the state (field 3).
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, fmt.Errorf("read /proc/%d/stat: %w (Linux only)", pid, err)
	}
	// The command name is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return f, nil
}

// ProcessStopped reports whether pid is stopped by a signal (state T).
func ProcessStopped(pid int) (bool, error) {
	f, err := procStat(pid)
	if err != nil {
		return false, err
	}
	return f[0] == "T", nil
}

// ProcessCPU returns the user+system CPU time pid has used, from
// /proc/<pid>/stat (Linux).
func ProcessCPU(pid int) (time.Duration, error) {
	f, err := procStat(pid)
	if err != nil {
		return 0, fmt.Errorf("the CPU time of process %d: %w", pid, err)
	}
	// f[0] is the state (field 3); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected utime/stime", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// ProcessAnon returns pid's resident anonymous memory (RssAnon of
// /proc/<pid>/status: its heap and stacks, not file pages such as bolt's
// mmap), in bytes.
func ProcessAnon(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read the memory of process %d: %w (Linux only)", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status: unexpected RssAnon %q", pid, v)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no RssAnon", pid)
}

// samplePeak samples pid's ProcessAnon every 20 ms until stop, which
// returns once the sampler ended; *peak is the largest seen.
func samplePeak(pid int) (peak *int64, stop func()) {
	peak = new(int64)
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if v, err := ProcessAnon(pid); err == nil {
				*peak = max(*peak, v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return peak, func() { close(done); <-ended }
}
