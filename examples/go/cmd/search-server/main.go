// Command search-server answers vector searches over one Sextant file with net/http,
// while another process (cmd/ingest, or the Python or Node ingest) upserts into the
// same file. No lock of its own: each request runs in a read session, a stable
// snapshot of everything committed before it began, which never waits for the writer.
//
//	search-server -db vectors.sx -addr 127.0.0.1:8080
//
// GET/POST /search and GET /health, as described in examples/README.md.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	sextant "github.com/sextant/sextant/bindings/go"
)

type server struct {
	db         *sextant.DB
	collection string
}

type searchRequest struct {
	Vector []float32 `json:"vector"`
	K      int       `json:"k"`
	Ef     int       `json:"ef"`
}

type searchResponse struct {
	IDs        []string  `json:"ids"`
	Distances  []float32 `json:"distances"`
	Count      uint64    `json:"count"`
	Generation uint64    `json:"generation"`
	PID        int       `json:"pid"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": code, "message": msg})
}

// snapshot reads the count and generation of one read session and, when query is not
// nil, searches it: all three answers come from the same snapshot.
func (s *server) snapshot(r *http.Request, query []float32, k, ef int) (searchResponse, error) {
	resp := searchResponse{IDs: []string{}, Distances: []float32{}, PID: os.Getpid()}
	err := s.db.View(func(tx *sextant.ReadTx) (err error) {
		if resp.Generation, err = tx.UserVersion(); err != nil {
			return err
		}
		resp.Count, err = tx.Count(s.collection)
		if errors.Is(err, sextant.ErrNotFound) { // the ingest has not created it yet
			resp.Count = 0
			return nil
		}
		if err != nil || query == nil {
			return err
		}
		var opts []sextant.SearchOption
		if ef > 0 {
			opts = append(opts, sextant.WithEf(ef))
		}
		hits, err := tx.Search(r.Context(), s.collection, query, k, opts...)
		for _, h := range hits {
			resp.IDs = append(resp.IDs, h.ID)
			resp.Distances = append(resp.Distances, h.Distance)
		}
		return err
	})
	return resp, err
}

func (s *server) search(w http.ResponseWriter, r *http.Request) {
	req := searchRequest{K: 10}
	switch r.Method {
	case http.MethodPost:
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "bad JSON body: "+err.Error())
			return
		}
	case http.MethodGet:
		q := r.URL.Query()
		for _, f := range strings.Split(q.Get("vector"), ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 32)
			if err != nil {
				writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "vector must be comma-separated numbers")
				return
			}
			req.Vector = append(req.Vector, float32(v))
		}
		for name, p := range map[string]*int{"k": &req.K, "ef": &req.Ef} {
			if v := q.Get(name); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil {
					writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", name+" must be an integer")
					return
				}
				*p = n
			}
		}
	default:
		writeError(w, http.StatusMethodNotAllowed, "MISUSE", "GET or POST")
		return
	}
	if req.K < 1 || req.K > 1000 || len(req.Vector) == 0 {
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "need a vector and 1 <= k <= 1000")
		return
	}
	resp, err := s.snapshot(r, req.Vector, req.K, req.Ef)
	var serr *sextant.Error
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, resp)
	case errors.Is(err, sextant.ErrDimensionMismatch), errors.Is(err, sextant.ErrInvalidArgument):
		errors.As(err, &serr)
		writeError(w, http.StatusBadRequest, serr.Code, serr.Message)
	default:
		writeError(w, http.StatusInternalServerError, "ERROR", err.Error())
	}
}

func (s *server) health(w http.ResponseWriter, r *http.Request) {
	resp, err := s.snapshot(r, nil, 0, 0)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "ERROR", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status": "ok", "count": resp.Count, "generation": resp.Generation, "pid": resp.PID,
	})
}

func main() {
	dbPath := flag.String("db", "vectors.sx", "database file")
	collection := flag.String("collection", "docs", "collection to search")
	addr := flag.String("addr", "", "listen address (default 127.0.0.1:$PORT, else 127.0.0.1:8080)")
	flag.Parse()
	if *addr == "" {
		port := os.Getenv("PORT")
		if port == "" {
			port = "8080"
		}
		*addr = "127.0.0.1:" + port
	}

	db, err := sextant.Open(*dbPath) // creates the file if the ingest has not yet
	if err != nil {
		log.Fatal(err)
	}
	s := &server{db: db, collection: *collection}
	mux := http.NewServeMux()
	mux.HandleFunc("/search", s.search)
	mux.HandleFunc("/health", s.health)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "search-server: pid %d serving %s on http://%s\n", os.Getpid(), *dbPath, ln.Addr())
	srv := &http.Server{Handler: mux}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		<-sig
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	if err := db.Close(); err != nil {
		log.Fatal(err)
	}
}
