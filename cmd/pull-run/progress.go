package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-registry/berth/runner/image"
)

// pullPrinter shows a pull's progress as `docker pull` does: on a terminal, one line per
// layer redrawn in place; otherwise one plain line per state change (no byte counts).
type pullPrinter struct {
	mu    sync.Mutex
	out   io.Writer
	tty   bool
	width int
	now   func() time.Time

	layers map[string]*layerLine
	drawn  int // lines of the block currently on screen
	last   time.Time
}

type layerLine struct {
	index   int
	id      string
	status  image.Status
	current int64
	total   int64
	started time.Time // first Downloading event
}

func newPullPrinter(out io.Writer, tty bool, width int) *pullPrinter {
	return &pullPrinter{out: out, tty: tty, width: width, now: time.Now, layers: map[string]*layerLine{}}
}

// Report implements image.Reporter.
func (p *pullPrinter) Report(ev image.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.layers[ev.ID]
	if l == nil {
		l = &layerLine{index: ev.Index, id: ev.ID}
		p.layers[ev.ID] = l
	}
	l.index = min(l.index, ev.Index)
	changed := l.status != ev.Status
	l.status, l.total = ev.Status, ev.Total
	if ev.Status == image.StatusDownloading {
		if l.started.IsZero() {
			l.started = p.now()
		}
		l.current = ev.Current
	}
	if !p.tty {
		switch ev.Status {
		case image.StatusDownloading, image.StatusExtracting, image.StatusFailed:
			return
		}
		if changed {
			fmt.Fprintf(p.out, "%s: %s\n", ev.ID, ev.Status)
		}
		return
	}
	// On a terminal: redraw on every state change, and at most 10 times a second for bytes.
	if !changed && p.now().Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.redraw()
}

// Flush draws the final state (on a terminal).
func (p *pullPrinter) Flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		p.redraw()
	}
}

func (p *pullPrinter) redraw() {
	p.last = p.now()
	lines := make([]*layerLine, 0, len(p.layers))
	for _, l := range p.layers {
		lines = append(lines, l)
	}
	slices.SortFunc(lines, func(a, b *layerLine) int {
		if a.index != b.index {
			return a.index - b.index
		}
		return strings.Compare(a.id, b.id)
	})
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	for _, l := range lines {
		text := p.format(l)
		if p.width > 1 && len(text) > p.width-1 {
			text = text[:p.width-1] // a wrapped line would break the cursor arithmetic
		}
		b.WriteString("\x1b[2K\r")
		b.WriteString(text)
		b.WriteByte('\n')
	}
	p.drawn = len(lines)
	io.WriteString(p.out, b.String())
}

// format renders one layer line: "<id>: Downloading [====>   ]  12.3MB/45.6MB  5.2MB/s".
func (p *pullPrinter) format(l *layerLine) string {
	s := l.id + ": " + string(l.status)
	if l.status != image.StatusDownloading {
		return s
	}
	return s + " " + progressBar(l.current, l.total, p.width, p.now().Sub(l.started))
}

// progressBar is Docker's JSONProgress rendering (bar only on terminals wider than 110
// columns), followed by the download speed.
func progressBar(current, total int64, width int, elapsed time.Duration) string {
	if current <= 0 && total <= 0 {
		return ""
	}
	if total <= 0 {
		return fmt.Sprintf("%8v", humanSizePrecision(float64(current), 4))
	}
	var bar string
	if width > 110 {
		pct := int(float64(current)/float64(total)*100) / 2
		pct = min(pct, 50)
		spaces := max(50-pct, 0)
		bar = fmt.Sprintf("[%s>%s] ", strings.Repeat("=", pct), strings.Repeat(" ", spaces))
	}
	numbers := fmt.Sprintf("%8v/%v", humanSizePrecision(float64(current), 4), humanSizePrecision(float64(total), 4))
	if current > total {
		numbers = fmt.Sprintf("%8v", humanSizePrecision(float64(current), 4))
	}
	speed := ""
	if elapsed >= 200*time.Millisecond && current > 0 {
		speed = "  " + humanSizePrecision(float64(current)/elapsed.Seconds(), 3) + "/s"
	}
	return bar + numbers + speed
}
