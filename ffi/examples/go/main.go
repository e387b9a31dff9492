// Command objgo: a PUT/GET round trip with SSE-KMS and a range read through ssekit's C ABI, over cgo.
//
//	CGO_LDFLAGS=/path/to/target/release/libssekit.a go build && ./objgo DIR
//
// DIR gets the local keyring (DIR/keyring) and the audit log (DIR/audit.log). It prints one line per
// check and "verdict: PASS" (exit 0) or "verdict: FAIL ..." (exit 1).
//
// Memory rules followed here (cgo's pointer-passing rules):
//   - Go byte slices are passed to C as unsafe.Pointer(&b[0]) for the duration of one call only; the
//     library never keeps them (it copies what it keeps). They hold no Go pointers, as cgo requires.
//   - Strings are copied into C memory with C.CString and freed with C.free.
//   - Everything the library allocates (engine, request, bucket, plans, sealer, opener, meta, bytes,
//     range, s3 error) is freed with its own ssekit_*_free, with defer.
//   - ssekit_last_error_message is thread-local: the goroutine making calls is locked to its OS
//     thread (runtime.LockOSThread), or the message read after a failure could be another thread's.
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -lpthread -ldl -lm
#include <stdlib.h>
#include "ssekit.h"
*/
import "C"

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"unsafe"
)

// ssekitError is a failed call: the result's name and the library's message.
type ssekitError struct {
	what, name, msg string
}

func (e *ssekitError) Error() string { return fmt.Sprintf("%s: %s: %s", e.what, e.name, e.msg) }

// check turns a result into an error, reading the message on the same thread right away.
func check(r C.ssekit_result, what string) error {
	if r == C.SSEKIT_RESULT_OK {
		return nil
	}
	return &ssekitError{what, C.GoString(C.ssekit_result_name(C.uint32_t(r))), C.GoString(C.ssekit_last_error_message())}
}

// s3Error is what a client would get back: S3's code, HTTP status and message.
type s3Error struct {
	code    string
	status  int
	message string
}

func (e *s3Error) Error() string { return fmt.Sprintf("%s %d %s", e.code, e.status, e.message) }

// checkS3 is check for the S3-layer calls: SSEKIT_RESULT_S3_ERROR comes with an ssekit_s3_error.
func checkS3(r C.ssekit_result, err *C.ssekit_s3_error, what string) error {
	if r == C.SSEKIT_RESULT_S3_ERROR && err != nil {
		defer C.ssekit_s3_error_free(err)
		return &s3Error{C.GoString(C.ssekit_s3_error_code(err)), int(C.ssekit_s3_error_status(err)), C.GoString(C.ssekit_s3_error_message(err))}
	}
	return check(r, what)
}

// cstr copies s into C memory: pass p and n, then free p.
func cstr(s string) (p *C.char, n C.size_t) { return C.CString(s), C.size_t(len(s)) }

// ptr is a Go slice's first byte for one C call (nil for an empty slice).
func ptr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

func newEngine(dir string) (*C.ssekit_engine, error) {
	var b *C.ssekit_engine_builder
	if err := check(C.ssekit_engine_builder_new(&b), "builder"); err != nil {
		return nil, err
	}
	kr, krn := cstr(filepath.Join(dir, "keyring"))
	defer C.free(unsafe.Pointer(kr))
	al, aln := cstr(filepath.Join(dir, "audit.log"))
	defer C.free(unsafe.Pointer(al))
	if err := check(C.ssekit_engine_builder_local_keyring(b, kr, krn, nil, 0), "keyring"); err != nil {
		C.ssekit_engine_builder_free(b)
		return nil, err
	}
	if err := check(C.ssekit_engine_builder_audit_file(b, al, aln), "audit"); err != nil {
		C.ssekit_engine_builder_free(b)
		return nil, err
	}
	var e *C.ssekit_engine
	return e, check(C.ssekit_engine_builder_build(b, &e), "build") // frees the builder
}

// newRequest makes a request with the given headers (name, value pairs).
func newRequest(op C.uint32_t, bucket, key string, headers ...string) (*C.ssekit_request, error) {
	bp, bn := cstr(bucket)
	defer C.free(unsafe.Pointer(bp))
	kp, kn := cstr(key)
	defer C.free(unsafe.Pointer(kp))
	var req *C.ssekit_request
	if err := check(C.ssekit_request_new(op, bp, bn, kp, kn, &req), "request"); err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(headers); i += 2 {
		np, nn := cstr(headers[i])
		vp, vn := cstr(headers[i+1])
		r := C.ssekit_request_add_header(req, np, nn, vp, vn)
		C.free(unsafe.Pointer(np))
		C.free(unsafe.Pointer(vp))
		if err := check(r, "header"); err != nil {
			C.ssekit_request_free(req)
			return nil, err
		}
	}
	return req, nil
}

func headers(h *C.ssekit_headers) []string {
	var out []string
	for i := C.size_t(0); i < C.ssekit_headers_len(h); i++ {
		var name, value *C.char
		var nl, vl C.size_t
		if C.ssekit_headers_get(h, i, &name, &nl, &value, &vl) == C.SSEKIT_RESULT_OK {
			out = append(out, C.GoStringN(name, C.int(nl))+": "+C.GoStringN(value, C.int(vl)))
		}
	}
	return out
}

// put seals body under SSE-KMS key keyID, streaming it through a sealer in 64 KiB pieces, and
// returns the stored bytes and the encoded metadata (what a server writes to disk).
func put(e *C.ssekit_engine, bk *C.ssekit_bucket, key, keyID string, body []byte) (stored, meta []byte, err error) {
	req, err := newRequest(C.SSEKIT_OPERATION_PUT_OBJECT, "gobucket", key,
		"x-amz-server-side-encryption", "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id", keyID)
	if err != nil {
		return nil, nil, err
	}
	defer C.ssekit_request_free(req)
	var plan *C.ssekit_write_plan
	var s3err *C.ssekit_s3_error
	if err := checkS3(C.ssekit_engine_plan_write(e, req, bk, &plan, &s3err), s3err, "plan"); err != nil {
		return nil, nil, err
	}
	defer C.ssekit_write_plan_free(plan)
	var sealer *C.ssekit_sealer
	if err := check(C.ssekit_write_plan_sealer(plan, 0, &sealer), "sealer"); err != nil {
		return nil, nil, err
	}
	defer C.ssekit_sealer_free(sealer)
	var n, w C.size_t
	for off := 0; off < len(body); off += 64 << 10 {
		piece := body[off:min(off+64<<10, len(body))]
		if err := check(C.ssekit_sealer_update_len(sealer, C.size_t(len(piece)), &n), "seal"); err != nil {
			return nil, nil, err
		}
		out := make([]byte, int(n)+1) // +1: never an empty slice (nil pointer)
		if err := check(C.ssekit_sealer_update(sealer, ptr(piece), C.size_t(len(piece)), ptr(out), C.size_t(len(out)), &w), "seal"); err != nil {
			return nil, nil, err
		}
		stored = append(stored, out[:w]...)
	}
	var entry C.ssekit_part_entry
	if err := check(C.ssekit_sealer_finish_len(sealer, &n), "seal"); err != nil {
		return nil, nil, err
	}
	out := make([]byte, int(n)+1)
	if err := check(C.ssekit_sealer_finish(sealer, ptr(out), C.size_t(len(out)), &w, &entry), "seal"); err != nil {
		return nil, nil, err
	}
	stored = append(stored, out[:w]...)
	var m *C.ssekit_meta
	if err := check(C.ssekit_write_plan_finish(plan, entry.size, &m), "finish"); err != nil {
		return nil, nil, err
	}
	defer C.ssekit_meta_free(m)
	var enc *C.ssekit_bytes
	if err := check(C.ssekit_meta_encode(m, &enc), "encode"); err != nil {
		return nil, nil, err
	}
	defer C.ssekit_bytes_free(enc)
	// C.GoBytes copies: nothing of the library's memory is kept after the free.
	meta = C.GoBytes(unsafe.Pointer(C.ssekit_bytes_data(enc)), C.int(C.ssekit_bytes_len(enc)))
	fmt.Printf("put headers: %q\n", headers(C.ssekit_write_plan_response_headers(plan)))
	return stored, meta, nil
}

// get opens the stored object: the whole of it through an opener, and the range rng (fetching only
// the stored byte ranges the plan lists).
func get(e *C.ssekit_engine, bk *C.ssekit_bucket, key string, stored, meta []byte, rng string) (whole, part []byte, err error) {
	var m *C.ssekit_meta
	if err := check(C.ssekit_meta_parse(ptr(meta), C.size_t(len(meta)), &m), "parse"); err != nil {
		return nil, nil, err
	}
	defer C.ssekit_meta_free(m)
	req, err := newRequest(C.SSEKIT_OPERATION_GET_OBJECT, "gobucket", key)
	if err != nil {
		return nil, nil, err
	}
	defer C.ssekit_request_free(req)
	var plan *C.ssekit_read_plan
	var s3err *C.ssekit_s3_error
	if err := checkS3(C.ssekit_engine_plan_read(e, req, bk, m, &plan, &s3err), s3err, "plan"); err != nil {
		return nil, nil, err
	}
	defer C.ssekit_read_plan_free(plan)

	var op *C.ssekit_opener
	if err := check(C.ssekit_read_plan_opener(plan, 0, &op), "opener"); err != nil {
		return nil, nil, err
	}
	defer C.ssekit_opener_free(op)
	var n, w C.size_t
	for off := 0; off < len(stored); off += 64 << 10 {
		piece := stored[off:min(off+64<<10, len(stored))]
		if err := check(C.ssekit_opener_update_len(op, C.size_t(len(piece)), &n), "open"); err != nil {
			return nil, nil, err
		}
		out := make([]byte, int(n)+1)
		if err := check(C.ssekit_opener_update(op, ptr(piece), C.size_t(len(piece)), ptr(out), C.size_t(len(out)), &w), "open"); err != nil {
			return nil, nil, err
		}
		whole = append(whole, out[:w]...) // authentic chunks only
	}
	if err := check(C.ssekit_opener_finish(op), "open"); err != nil {
		return nil, nil, err
	}

	rp, rn := cstr(rng)
	defer C.free(unsafe.Pointer(rp))
	var rg *C.ssekit_range
	if err := check(C.ssekit_read_plan_range(plan, rp, rn, C.uint64_t(len(stored)), &rg), "range"); err != nil {
		return nil, nil, err
	}
	defer C.ssekit_range_free(rg)
	var start, end, size C.uint64_t
	if err := check(C.ssekit_range_plaintext(rg, &start, &end, &size), "range"); err != nil {
		return nil, nil, err
	}
	var fetched []byte
	for i := C.size_t(0); i < C.ssekit_range_fetch_count(rg); i++ {
		var off, l C.uint64_t
		if err := check(C.ssekit_range_fetch(rg, i, &off, &l), "range"); err != nil {
			return nil, nil, err
		}
		fetched = append(fetched, stored[off:off+l]...) // a server reads these from its disk
	}
	part = make([]byte, int(end-start)+1)
	if err := check(C.ssekit_range_open(rg, plan, ptr(fetched), C.size_t(len(fetched)), ptr(part), C.size_t(len(part)), &w), "range open"); err != nil {
		return nil, nil, err
	}
	fmt.Printf("range %s: fetched %d of %d stored bytes\n", rng, len(fetched), len(stored))
	return whole, part[:w], nil
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}

func run(dir string) error {
	e, err := newEngine(dir)
	if err != nil {
		return err
	}
	defer C.ssekit_engine_free(e) // deferred first, so it runs after every other free
	var bk *C.ssekit_bucket
	if err := check(C.ssekit_bucket_new(&bk), "bucket"); err != nil {
		return err
	}
	defer C.ssekit_bucket_free(bk)

	kid, kidn := cstr("gokey")
	defer C.free(unsafe.Pointer(kid))
	var info *C.ssekit_bytes
	if err := check(C.ssekit_engine_create_key(e, kid, kidn, nil, 0, 0, &info), "create key"); err != nil {
		return err
	}
	C.ssekit_bytes_free(info)

	body := make([]byte, 1<<20+123)
	if _, err := rand.Read(body); err != nil {
		return err
	}
	stored, meta, err := put(e, bk, "obj", "gokey", body)
	if err != nil {
		return err
	}
	if bytes.Contains(stored, body[1000:1032]) {
		return fmt.Errorf("the stored bytes hold plaintext")
	}
	fmt.Printf("put ok: %d bytes stored as %d, metadata %d bytes\n", len(body), len(stored), len(meta))

	whole, part, err := get(e, bk, "obj", stored, meta, "bytes=100000-300000")
	if err != nil {
		return err
	}
	if !bytes.Equal(whole, body) {
		return fmt.Errorf("get returned %d bytes, not the body", len(whole))
	}
	fmt.Printf("get ok: %d bytes\n", len(whole))
	if !bytes.Equal(part, body[100000:300001]) {
		return fmt.Errorf("range returned %d bytes, not the slice", len(part))
	}
	fmt.Printf("range ok: %d bytes\n", len(part))

	// An S3 error, as a client would get it.
	bad, err := newRequest(C.SSEKIT_OPERATION_PUT_OBJECT, "gobucket", "bad", "x-amz-server-side-encryption", "AES192")
	if err != nil {
		return err
	}
	defer C.ssekit_request_free(bad)
	var plan *C.ssekit_write_plan
	var s3err *C.ssekit_s3_error
	err = checkS3(C.ssekit_engine_plan_write(e, bad, bk, &plan, &s3err), s3err, "plan")
	if se, ok := err.(*s3Error); !ok {
		C.ssekit_write_plan_free(plan)
		return fmt.Errorf("AES192 was not refused as an S3 error: %v", err)
	} else {
		fmt.Printf("s3 error %s\n", se)
	}
	return nil
}

func main() {
	runtime.LockOSThread() // see the package comment: the last-error message is per thread
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: objgo DIR")
		os.Exit(64)
	}
	fmt.Printf("ssekit %s, backend %s\n", C.GoString(C.ssekit_version()), C.GoString(C.ssekit_backend_name()))
	if err := run(os.Args[1]); err != nil {
		fmt.Printf("verdict: FAIL %v\n", err)
		os.Exit(1)
	}
	fmt.Println("verdict: PASS")
}
