package main

// Sessions: initialize hands out an Mcp-Session-Id; later requests must carry a
// known one (else 404, so the client knows to initialize again) and DELETE
// forgets it. The store is bounded so a flood of initializes cannot grow memory
// without limit: idle sessions expire, and the least recently used one makes
// room when the store is full.

import (
	"sync"
	"time"
)

type sessionStore struct {
	mu      sync.Mutex
	seen    map[string]time.Time // session id -> last use
	maxSize int
	idleTTL time.Duration
	now     func() time.Time
}

func newSessionStore(maxSize int, idleTTL time.Duration) *sessionStore {
	return &sessionStore{seen: map[string]time.Time{}, maxSize: maxSize, idleTTL: idleTTL, now: time.Now}
}

// create starts a session and returns its id (128 random bits, hex).
func (s *sessionStore) create() string {
	id := randomHex(16)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seen) >= s.maxSize {
		s.evictLocked()
	}
	s.seen[id] = s.now()
	return id
}

// touch reports whether the session exists (and is not idle-expired), marking it used.
func (s *sessionStore) touch(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	last, ok := s.seen[id]
	if !ok {
		return false
	}
	now := s.now()
	if now.Sub(last) > s.idleTTL {
		delete(s.seen, id)
		return false
	}
	s.seen[id] = now
	return true
}

// remove forgets a session; it reports whether the session existed.
func (s *sessionStore) remove(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.seen[id]
	delete(s.seen, id)
	return ok
}

func (s *sessionStore) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// evictLocked drops expired sessions, and the least recently used one if none expired.
func (s *sessionStore) evictLocked() {
	now := s.now()
	oldestID, oldest := "", now
	for id, last := range s.seen {
		if now.Sub(last) > s.idleTTL {
			delete(s.seen, id)
			continue
		}
		if !last.After(oldest) {
			oldestID, oldest = id, last
		}
	}
	if len(s.seen) >= s.maxSize && oldestID != "" {
		delete(s.seen, oldestID)
	}
}
