package git

import (
	"slices"
	"testing"
)

func TestNetEnv(t *testing.T) {
	bounded := []string{"GIT_SSH_COMMAND=" + sshCommand, "GIT_HTTP_LOW_SPEED_LIMIT=1000", "GIT_HTTP_LOW_SPEED_TIME=60"}
	tests := []struct {
		name string
		env  map[string]string
		set  map[string]bool
		want []string
	}{
		{name: "nothing set", want: bounded},
		{name: "GIT_SSH_COMMAND set", env: map[string]string{"GIT_SSH_COMMAND": "ssh -i key"}, want: bounded[1:]},
		{name: "GIT_SSH set", env: map[string]string{"GIT_SSH": "/usr/bin/plink"}, want: bounded[1:]},
		{name: "core.sshCommand configured", set: map[string]bool{"core.sshcommand": true}, want: bounded[1:]},
		{name: "http.lowSpeedTime configured", set: map[string]bool{"http.lowspeedtime": true}, want: bounded[:1]},
		{name: "GIT_HTTP_LOW_SPEED_LIMIT set", env: map[string]string{"GIT_HTTP_LOW_SPEED_LIMIT": "10"}, want: bounded[:1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := netEnv(func(k string) string { return tt.env[k] }, tt.set)
			if !slices.Equal(got, tt.want) {
				t.Errorf("netEnv = %q, want %q", got, tt.want)
			}
		})
	}
}
