package mqtt

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"

	"github.com/adtrd/adtrd/internal/safefile"
)

// machineIDFile is systemd's per-installation id (machine-id(5)).
const machineIDFile = "/etc/machine-id"

// DefaultClientID is the client id of a config that leaves mqtt.client_id empty:
// "adtrd", up to 10 letters and digits of the host name's first label, and 8 hex
// digits of a hash of the host name, /etc/machine-id and the topic prefix. It is made
// only of what every MQTT 3.1.1 broker must accept (1..23 of 0-9a-zA-Z), reads well in
// the broker's log, stays the same across restarts, and differs between lines: on
// other machines (also ones cloned from one image with one host name: their machine
// ids differ) and on one machine, where each line has a topic of its own. The machine
// id itself is not sent: it is to be kept private (machine-id(5)).
func DefaultClientID(topic string) string {
	host, _ := os.Hostname()
	id, _ := safefile.Read(machineIDFile, 4096)
	return clientID(host, strings.TrimSpace(string(id)), topic)
}

func clientID(host, machineID, topic string) string {
	label, _, _ := strings.Cut(host, ".")
	var b strings.Builder
	b.WriteString("adtrd")
	for _, r := range label {
		if b.Len() == 15 {
			break
		}
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			b.WriteRune(r)
		}
	}
	sum := sha256.Sum256([]byte("adtrd mqtt client id\x00" + host + "\x00" + machineID + "\x00" + topic))
	b.WriteString(hex.EncodeToString(sum[:4]))
	return b.String()
}
