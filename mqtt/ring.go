package mqtt

// topic is which of the publisher's topics a message goes to.
type topic uint8

const (
	topicDecision topic = iota
	topicFault
	topicState
	topicAvailability
	topicCount
)

var topicNames = [topicCount]string{"decision", "fault", "state", "availability"}

// message is one encoded payload waiting for the broker's acknowledgement. Its
// payload is never modified once made, so the sender can hand it to paho without
// holding the lock.
type message struct {
	id      uint64 // 1-based, consecutive in the ring
	topic   topic
	payload []byte
}

// ring is the bounded buffer between the bus consumer and the sender: messages in
// order, the oldest dropped when it is full. A message leaves it when the broker has
// acknowledged it (ack) or when it is dropped, never when it is merely sent, so a
// connection lost with messages in flight resends them. Its storage grows on demand
// up to max, so a large mqtt.buffer costs memory only while the broker is away.
type ring struct {
	buf    []message
	head   int // index of the oldest message in buf
	n      int
	max    int
	nextID uint64
}

func newRing(max int) ring { return ring{max: max, nextID: 1} }

// push appends m and reports whether the oldest message had to be dropped for it.
func (r *ring) push(t topic, payload []byte) (dropped bool) {
	if r.n == r.max {
		r.buf[r.head] = message{}
		r.head = (r.head + 1) % len(r.buf)
		r.n--
		dropped = true
	} else if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)%len(r.buf)] = message{id: r.nextID, topic: t, payload: payload}
	r.nextID++
	r.n++
	return dropped
}

func (r *ring) grow() {
	size := min(max(2*len(r.buf), 16), r.max)
	buf := make([]message, size)
	for i := range r.n {
		buf[i] = r.buf[(r.head+i)%len(r.buf)]
	}
	r.buf, r.head = buf, 0
}

// from is the oldest message whose id is at least id.
func (r *ring) from(id uint64) (message, bool) {
	if r.n == 0 {
		return message{}, false
	}
	i := 0
	if head := r.buf[r.head].id; id > head {
		if id-head >= uint64(r.n) {
			return message{}, false
		}
		i = int(id - head)
	}
	return r.buf[(r.head+i)%len(r.buf)], true
}

// ack removes the message id, which the broker has acknowledged; messages are
// acknowledged oldest first, so it is the oldest unless it was dropped already.
func (r *ring) ack(id uint64) {
	if r.n > 0 && r.buf[r.head].id == id {
		r.buf[r.head] = message{}
		r.head = (r.head + 1) % len(r.buf)
		r.n--
	}
}
