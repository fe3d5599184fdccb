package load

import "testing"

func TestStatTicks(t *testing.T) {
	for _, c := range []struct {
		line               string
		busy, total, steal float64
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice
		{"cpu  2041257 33843 636115 2495155 109128 0 78881 196038 7 9", 2041257 + 33843 + 636115 + 78881 + 196038, 2041257 + 33843 + 636115 + 2495155 + 109128 + 78881 + 196038, 196038},
		// an older kernel without steal and guest columns
		{"cpu  10 20 30 40 50 60 70", 10 + 20 + 30 + 60 + 70, 280, 0},
		{"cpu0 1 2 3 4 5 6 7 8", 0, 0, 0},
		{"", 0, 0, 0},
	} {
		busy, total, steal := statTicks(c.line)
		if busy != c.busy || total != c.total || steal != c.steal {
			t.Errorf("statTicks(%q) = %v, %v, %v; want %v, %v, %v", c.line, busy, total, steal, c.busy, c.total, c.steal)
		}
	}
}

func TestMaxOthers(t *testing.T) {
	r := Report{
		Closed: []ClosedResult{
			{Seconds: 3, CPU: CPUUse{Others: 0.10, Steal: 0.05}},
			{Seconds: 0.5, CPU: CPUUse{Others: 0.90}}, // too short to count
		},
		Live: &LiveResult{Seconds: 5, CPU: CPUUse{Others: 0.20, Steal: 0.25}},
	}
	if got := r.MaxOthers(); got != 0.25 {
		t.Errorf("MaxOthers = %v, want 0.25 (the live phase's steal)", got)
	}
	r.Live.CPU.Steal = 0
	if got := r.MaxOthers(); got != 0.20 {
		t.Errorf("MaxOthers = %v, want 0.20 (the live phase's others)", got)
	}
}
