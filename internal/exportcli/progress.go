package exportcli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/ebpfrec/ebpfrec/analyze"
)

// stderrIsTerminal says whether the app's error output is a terminal.
func stderrIsTerminal(c *cli.Context) bool {
	f, ok := c.App.ErrWriter.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progressBar draws "[#####.....]  45%  1.2M/2.6M events" on one line.
type progressBar struct {
	w     io.Writer
	start time.Time
	last  time.Time
	drawn bool
}

func (b *progressBar) update(p analyze.Progress) {
	now := time.Now()
	if b.start.IsZero() {
		b.start = now
	}
	if now.Sub(b.last) < 100*time.Millisecond {
		return
	}
	b.last = now
	rate := ""
	if el := now.Sub(b.start).Seconds(); el > 0.5 {
		rate = "  " + human(uint64(float64(p.Events)/el)) + "/s"
	}
	const width = 30
	if p.TotalEvents == 0 {
		fmt.Fprintf(b.w, "\rexporting: %s events%s\033[K", human(p.Events), rate)
	} else {
		frac := min(float64(p.Events)/float64(p.TotalEvents), 1)
		n := int(frac * width)
		fmt.Fprintf(b.w, "\r[%s%s] %3.0f%%  %s/%s events%s\033[K", strings.Repeat("#", n), strings.Repeat(".", width-n),
			frac*100, human(p.Events), human(p.TotalEvents), rate)
	}
	b.drawn = true
}

func (b *progressBar) clear() {
	if b != nil && b.drawn {
		fmt.Fprint(b.w, "\r\033[K")
	}
}

func human(n uint64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1fG", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e4:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
