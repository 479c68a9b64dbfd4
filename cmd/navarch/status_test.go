package main

import (
	"testing"
	"time"

	"github.com/navarch/navarch/client"
)

func TestBackupProblem(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		m    client.MemberInfo
		want string
	}{
		{client.MemberInfo{Name: "n1"}, ""},
		{client.MemberInfo{Name: "n1", BackupInterval: 3600, LastBackup: now.Add(-90 * time.Minute)}, ""},
		{client.MemberInfo{Name: "n1", BackupInterval: 3600}, "node n1 has saved no backup yet (every 1h0m0s, --backup-dir): its log says why"},
		{client.MemberInfo{Name: "n1", BackupInterval: 3600, LastBackup: now.Add(-3 * time.Hour)}, "node n1's newest backup is 3h old (every 1h0m0s, --backup-dir): its log says why"},
	} {
		if got := backupProblem(tt.m, now); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.m, got, tt.want)
		}
	}
}

func TestBackupAge(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for m, want := range map[client.MemberInfo]string{
		{Name: "n1"}:                     "-",
		{Name: "n1", BackupInterval: 60}: "none yet",
		{Name: "n1", BackupInterval: 60, LastBackup: now.Add(-90 * time.Second)}: "1m ago",
	} {
		if got := backupAge(m, now); got != want {
			t.Errorf("%+v: %q, want %q", m, got, want)
		}
	}
}
