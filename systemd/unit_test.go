package systemd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/adtrd/adtrd/internal/testlib"
)

func TestUnitVerifies(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	testlib.VerifyUnit(t, filepath.Join(testlib.Root(), "systemd", "adtrd.service"), exe)
}

// The unit says what the issue asks of it; verify checks syntax, this the choices.
func TestUnitSettings(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testlib.Root(), "systemd", "adtrd.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Type=notify-reload", "WatchdogSec=", "Restart=on-failure", "User=adtrd", "SupplementaryGroups=gpio video",
		"ProtectSystem=strict", "ReadWritePaths=/var/lib/adtrd", "NoNewPrivileges=yes", "DevicePolicy=closed",
		"DeviceAllow=char-gpiochip rw", "DeviceAllow=char-video4linux rw", "DeviceAllow=/dev/nvmap rw",
		"ExecStart=/usr/bin/adtrd run -c /etc/adtrd/adtrd.yaml",
	} {
		if !strings.Contains(string(b), "\n"+want) {
			t.Errorf("unit lacks %q", want)
		}
	}
}
