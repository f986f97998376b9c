// SPDX-License-Identifier: MIT
// The Go peer of bench/db_bench.sh: net/http with database/sql and lib/pq
// (Debian's golang-github-lib-pq-dev), serving TechEmpower's /db,
// /queries?queries=N and /fortunes as TechEmpower's Go net/http entry does:
// prepared statements (database/sql prepares each on every pooled connection
// it is used on), encoding/json, html/template for the fortunes.
//
//	go-db -addr 127.0.0.1:8080 -db postgres://user@127.0.0.1:5432/hello_world?sslmode=disable -pool 8
//
// GOMAXPROCS comes from the environment (the bench sets GOMAXPROCS=1).  The
// pool holds -pool connections, all of them kept open when idle.  Built
// offline by the bench in GOPATH mode:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o go-db main.go
package main

import (
	"database/sql"
	"encoding/json"
	"flag"
	"html/template"
	"log"
	"math/rand"
	"net/http"
	"sort"
	"strconv"

	_ "github.com/lib/pq"
)

type World struct {
	Id           int32 `json:"id"`
	RandomNumber int32 `json:"randomNumber"`
}

type Fortune struct {
	Id      int32
	Message string
}

const (
	worldRowCount = 10000
	worldSelect   = "SELECT id, randomNumber FROM World WHERE id = $1"
	fortuneSelect = "SELECT id, message FROM Fortune"
)

var (
	worldStmt   *sql.Stmt
	fortuneStmt *sql.Stmt
	fortuneTmpl = template.Must(template.New("fortune").Parse(`<!DOCTYPE html>` +
		`<html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>` +
		`{{range .}}<tr><td>{{.Id}}</td><td>{{.Message}}</td></tr>{{end}}` +
		`</table></body></html>`))
)

func setHeaders(w http.ResponseWriter, contentType string) {
	h := w.Header()
	h.Set("Server", "Go")
	h.Set("Content-Type", contentType)
}

// getQueries reads ?queries=N, clamped to 1..500 (1 when absent or not a number).
func getQueries(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("queries"))
	if err != nil || n < 1 {
		return 1
	}
	if n > 500 {
		return 500
	}
	return n
}

func dbHandler(w http.ResponseWriter, r *http.Request) {
	var world World
	if err := worldStmt.QueryRow(rand.Intn(worldRowCount)+1).Scan(&world.Id, &world.RandomNumber); err != nil {
		log.Printf("db: %v", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	setHeaders(w, "application/json")
	json.NewEncoder(w).Encode(&world)
}

func queriesHandler(w http.ResponseWriter, r *http.Request) {
	n := getQueries(r)
	worlds := make([]World, n)
	for i := range worlds {
		if err := worldStmt.QueryRow(rand.Intn(worldRowCount)+1).Scan(&worlds[i].Id, &worlds[i].RandomNumber); err != nil {
			log.Printf("queries: %v", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	setHeaders(w, "application/json")
	json.NewEncoder(w).Encode(worlds)
}

func fortunesHandler(w http.ResponseWriter, r *http.Request) {
	rows, err := fortuneStmt.Query()
	if err != nil {
		log.Printf("fortunes: %v", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	fortunes := make([]Fortune, 0, 16)
	for rows.Next() {
		var f Fortune
		if err := rows.Scan(&f.Id, &f.Message); err != nil {
			rows.Close()
			log.Printf("fortunes: %v", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fortunes = append(fortunes, f)
	}
	if err := rows.Err(); err != nil {
		log.Printf("fortunes: %v", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	fortunes = append(fortunes, Fortune{Message: "Additional fortune added at request time."})
	sort.Slice(fortunes, func(i, j int) bool { return fortunes[i].Message < fortunes[j].Message })
	setHeaders(w, "text/html; charset=utf-8")
	if err := fortuneTmpl.Execute(w, fortunes); err != nil {
		log.Printf("fortunes: %v", err)
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	dsn := flag.String("db", "", "lib/pq connection string or URI")
	pool := flag.Int("pool", 8, "database connections, open at most and kept idle")
	flag.Parse()

	db, err := sql.Open("postgres", *dsn)
	if err != nil {
		log.Fatalf("open: %v", err)
	}
	db.SetMaxOpenConns(*pool)
	db.SetMaxIdleConns(*pool)
	if err := db.Ping(); err != nil {
		log.Fatalf("ping: %v", err)
	}
	if worldStmt, err = db.Prepare(worldSelect); err != nil {
		log.Fatalf("prepare: %v", err)
	}
	if fortuneStmt, err = db.Prepare(fortuneSelect); err != nil {
		log.Fatalf("prepare: %v", err)
	}

	http.HandleFunc("/db", dbHandler)
	http.HandleFunc("/queries", queriesHandler)
	http.HandleFunc("/fortunes", fortunesHandler)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
