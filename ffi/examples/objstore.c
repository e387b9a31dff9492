/*
 * objstore.c: a tiny S3-style object store on ssekit's C ABI, in one file.
 *
 *   objstore DIR put  BUCKET KEY [--file PATH] [OPTIONS]   body from stdin or PATH
 *   objstore DIR get  BUCKET KEY [--range bytes=A-B] [OPTIONS]   body to stdout
 *   objstore DIR head BUCKET KEY [OPTIONS]                 headers and size to stdout
 *   objstore DIR list BUCKET                               KEY SIZE per object
 *   objstore DIR create-key ID | disable-key ID            manage the local keyring
 *
 * OPTIONS: -H 'name: value' (repeatable: the request's x-amz-* headers), --secure (the request came
 * over TLS; SSE-C needs it), --principal ARN (who the server authenticated).
 *
 * Layout under DIR: .keyring/ (the local keyring, 0700), audit.log, and per bucket BUCKET/.policy.json
 * (bucket policy), BUCKET/.encryption.json (default encryption), KEY.data (ciphertext) and KEY.meta
 * (ssekit_meta_encode's bytes: keep them beside the data; they hold the wrapped keys).
 *
 * The pattern for every request: build an ssekit_request from what the client sent, load the bucket's
 * configuration, ask the engine for a plan (which evaluates the policy and does the key work), then
 * stream the body through the plan's sealer or opener. Every fallible call returns ssekit_result
 * (0 = OK); S3-layer calls also hand back an ssekit_s3_error to send to the client.
 *
 * Build: cc -std=c11 -I ffi/include objstore.c target/release/libssekit.a -lpthread -ldl -lm
 */
#define _POSIX_C_SOURCE 200809L
#include "ssekit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PIECE (64 * 1024) /* bodies move in 64 KiB pieces: memory stays bounded for any size */
#define MAX_HEADERS 32

struct options {
  const char *file, *range, *principal;
  const char *headers[MAX_HEADERS];
  int nheaders;
  bool secure;
};

/* ---- Errors. S3 errors go to the client as code/status/message; the rest are the server's. ---- */

/* Reports a failed call and returns the exit status: 2 for an S3 error (the client's fault or
 * refusal, e.g. "AccessDenied 403 Access Denied"), 1 for anything else. Frees `err`. */
static int fail(const char *what, ssekit_result r, ssekit_s3_error *err) {
  if (r == SSEKIT_RESULT_S3_ERROR && err != NULL) {
    fprintf(stderr, "%s %u %s\n", ssekit_s3_error_code(err), (unsigned)ssekit_s3_error_status(err),
            ssekit_s3_error_message(err));
    ssekit_s3_error_free(err);
    return 2;
  }
  /* The message is thread-local and valid until the next ssekit call: print it right away. */
  fprintf(stderr, "objstore: %s: %s: %s\n", what, ssekit_result_name(r), ssekit_last_error_message());
  ssekit_s3_error_free(err); /* NULL is ignored */
  return 1;
}

static int fail_errno(const char *what, const char *path) {
  fprintf(stderr, "objstore: %s %s: %s\n", what, path, strerror(errno));
  return 1;
}

/* ---- Small file helpers (plain POSIX). ---- */

static char *path_of(const char *dir, const char *bucket, const char *name, const char *suffix) {
  size_t n = strlen(dir) + strlen(bucket) + strlen(name) + strlen(suffix) + 3;
  char *p = malloc(n);
  if (p != NULL) snprintf(p, n, "%s/%s%s%s%s", dir, bucket, *name ? "/" : "", name, suffix);
  return p;
}

/* Reads a whole small file (metadata, JSON) into a new buffer; NULL with errno set on failure. */
static unsigned char *slurp(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY);
  struct stat st;
  if (fd < 0) return NULL;
  unsigned char *buf = NULL;
  if (fstat(fd, &st) == 0 && (buf = malloc((size_t)st.st_size + 1)) != NULL) {
    ssize_t got = read(fd, buf, (size_t)st.st_size); /* small regular files: one read does it */
    if (got != (ssize_t)st.st_size) { free(buf); buf = NULL; errno = got < 0 ? errno : EIO; }
    else { buf[got] = 0; *len = (size_t)got; }
  }
  close(fd);
  return buf;
}

static int write_all(int fd, const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    p += w; n -= (size_t)w;
  }
  return 0;
}

/* Grows *buf to at least `need` bytes (output buffers sized by the library's _len functions). */
static void reserve(unsigned char **buf, size_t *cap, size_t need) {
  if (need <= *cap) return;
  unsigned char *p = realloc(*buf, need);
  if (p == NULL) { perror("objstore"); exit(1); }
  *buf = p; *cap = need;
}

/* ---- Setting up: the engine (once per process in a real server), requests, buckets. ---- */

/* The engine: the local keyring in DIR/.keyring and the audit log in DIR/audit.log.
 * Why ssekit_engine_builder_audit_file and not _audit_callback: every objstore run is a new
 * process. The file sink picks the hash chain up from the log's last line (under a lock shared by
 * every process), fsyncs each line and rotates; a callback sink keeps the chain position in memory
 * only, so each run would start a new chain at seq 0. A long-running server shipping lines to a
 * collector would pick the callback. */
static ssekit_result open_engine(const char *dir, ssekit_engine **engine) {
  ssekit_engine_builder *b;
  char *keyring = path_of(dir, ".keyring", "", ""), *audit = path_of(dir, "audit.log", "", "");
  ssekit_result r = ssekit_engine_builder_new(&b);
  if (r == SSEKIT_RESULT_OK) {
    if ((r = ssekit_engine_builder_local_keyring(b, keyring, strlen(keyring), NULL, 0)) ||
        (r = ssekit_engine_builder_audit_file(b, audit, strlen(audit))))
      ssekit_engine_builder_free(b);
    else
      r = ssekit_engine_builder_build(b, engine); /* frees the builder either way */
  }
  free(keyring); free(audit);
  return r;
}

/* One request as the S3 layer sees it: operation, bucket/key, principal, TLS, x-amz-* headers. */
static ssekit_result make_request(uint32_t op, const char *bucket, const char *key,
                                  const struct options *o, ssekit_request **out) {
  ssekit_request *req;
  ssekit_result r = ssekit_request_new(op, bucket, strlen(bucket), key, strlen(key), &req);
  if (r) return r;
  if (o->principal) r = ssekit_request_set_principal(req, o->principal, strlen(o->principal));
  if (!r) r = ssekit_request_set_secure(req, o->secure);
  for (int i = 0; !r && i < o->nheaders; i++) {
    const char *h = o->headers[i], *colon = strchr(h, ':'), *v = colon ? colon + 1 : "";
    size_t nlen = colon ? (size_t)(colon - h) : strlen(h);
    while (*v == ' ') v++;
    r = ssekit_request_add_header(req, h, nlen, v, strlen(v));
  }
  if (!r && o->range) r = ssekit_request_add_header(req, "Range", 5, o->range, strlen(o->range));
  if (r) { ssekit_request_free(req); return r; }
  *out = req;
  return SSEKIT_RESULT_OK;
}

/* The bucket's configuration: its policy and default encryption, if the files exist. */
static ssekit_result load_bucket(const char *dir, const char *bucket, ssekit_bucket **out) {
  ssekit_bucket *b;
  ssekit_result r = ssekit_bucket_new(&b);
  const char *names[2] = {".policy.json", ".encryption.json"};
  for (int i = 0; !r && i < 2; i++) {
    char *p = path_of(dir, bucket, names[i], "");
    size_t n;
    unsigned char *json = slurp(p, &n);
    if (json) r = i == 0 ? ssekit_bucket_set_policy(b, (char *)json, n)
                         : ssekit_bucket_set_encryption(b, (char *)json, n);
    free(json); free(p);
  }
  if (r) { ssekit_bucket_free(b); return r; }
  *out = b;
  return SSEKIT_RESULT_OK;
}

/* Response headers as `name: value` lines (borrowed from the plan: nothing to free). */
static void print_headers(FILE *f, const ssekit_headers *h) {
  for (size_t i = 0; i < ssekit_headers_len(h); i++) {
    const char *name, *value;
    size_t nl, vl;
    if (ssekit_headers_get(h, i, &name, &nl, &value, &vl) == SSEKIT_RESULT_OK)
      fprintf(f, "%.*s: %.*s\n", (int)nl, name, (int)vl, value);
  }
}

/* ---- PUT: plan the write, stream the body through a sealer to KEY.data, then store KEY.meta. ---- */

static int put(const char *dir, const char *bucket, const char *key, ssekit_engine *e,
               ssekit_request *req, ssekit_bucket *bk, const struct options *o) {
  ssekit_write_plan *plan = NULL;
  ssekit_sealer *sealer = NULL;
  ssekit_meta *meta = NULL;
  ssekit_bytes *enc = NULL;
  ssekit_s3_error *err = NULL;
  ssekit_part_entry entry;
  unsigned char *in = malloc(PIECE), *out = NULL;
  size_t cap = 0, n, w;
  int rc = 1, infd = o->file ? open(o->file, O_RDONLY) : STDIN_FILENO, datafd = -1, metafd = -1;
  char *bdir = path_of(dir, bucket, "", ""), *data = path_of(dir, bucket, key, ".data"),
       *metap = path_of(dir, bucket, key, ".meta"), *tmpd = path_of(dir, bucket, key, ".data.tmp"),
       *tmpm = path_of(dir, bucket, key, ".meta.tmp");
  ssekit_result r;

  if (infd < 0) { rc = fail_errno("open", o->file); goto out; }
  /* The policy, the SSE headers and the key service are all consulted here, before any body byte. */
  if ((r = ssekit_engine_plan_write(e, req, bk, &plan, &err))) { rc = fail("plan", r, err); goto out; }
  if ((r = ssekit_write_plan_sealer(plan, 0, &sealer))) { rc = fail("sealer", r, NULL); goto out; }
  if ((mkdir(bdir, 0755) && errno != EEXIST) ||
      (datafd = open(tmpd, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0) {
    rc = fail_errno("create", tmpd); goto out;
  }
  for (;;) { /* the sealer writes out every 16 KiB chunk as soon as it is complete */
    ssize_t got = read(infd, in, PIECE);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) { rc = fail_errno("read", o->file ? o->file : "stdin"); goto out; }
    if (got == 0) break;
    if ((r = ssekit_sealer_update_len(sealer, (size_t)got, &n))) { rc = fail("seal", r, NULL); goto out; }
    reserve(&out, &cap, n + 1); /* +1: never a NULL buffer, even when nothing is due yet */
    if ((r = ssekit_sealer_update(sealer, in, (size_t)got, out, cap, &w))) { rc = fail("seal", r, NULL); goto out; }
    if (write_all(datafd, out, w)) { rc = fail_errno("write", tmpd); goto out; }
  }
  if ((r = ssekit_sealer_finish_len(sealer, &n))) { rc = fail("seal", r, NULL); goto out; }
  reserve(&out, &cap, n + 1);
  if ((r = ssekit_sealer_finish(sealer, out, cap, &w, &entry))) { rc = fail("seal", r, NULL); goto out; }
  /* The metadata is authenticated over the size: hand the sealer's count back to the plan. */
  if ((r = ssekit_write_plan_finish(plan, entry.size, &meta)) || (r = ssekit_meta_encode(meta, &enc))) {
    rc = fail("metadata", r, NULL); goto out;
  }
  /* Temp files, fsync, rename: a crash never leaves a half-written object under its name. The
   * .meta rename is the commit point; a reader catching new data with old metadata gets an
   * authentication error, never wrong bytes. (One writer per key here; a real server would make the
   * temp names unique and version the object's names.) */
  if (write_all(datafd, out, w) || fsync(datafd) ||
      (metafd = open(tmpm, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0 ||
      write_all(metafd, ssekit_bytes_data(enc), ssekit_bytes_len(enc)) || fsync(metafd) ||
      rename(tmpd, data) || rename(tmpm, metap)) {
    rc = fail_errno("store", data); goto out;
  }
  print_headers(stderr, ssekit_write_plan_response_headers(plan));
  rc = 0;
out:
  if (datafd >= 0) close(datafd);
  if (metafd >= 0) close(metafd);
  if (rc) { unlink(tmpd); unlink(tmpm); }
  if (o->file && infd >= 0) close(infd);
  ssekit_bytes_free(enc); ssekit_meta_free(meta); ssekit_sealer_free(sealer);
  ssekit_write_plan_free(plan); /* zeroes the data key */
  free(in); free(out); free(bdir); free(data); free(metap); free(tmpd); free(tmpm);
  return rc;
}

/* ---- GET / HEAD: parse KEY.meta, plan the read, then stream or range-read KEY.data. ---- */

/* A range read: the plan lists the stored byte ranges that hold the asked plaintext (whole chunks
 * plus headers); fetch just those with pread, back to back, and open them (memory: about twice the
 * range, not the object). Returns -1 when the range is one S3 ignores (the caller then sends the
 * whole object), else the exit status. */
static int get_range(ssekit_read_plan *plan, int fd, uint64_t stored_len, const char *spec) {
  ssekit_range *rg = NULL;
  uint64_t start, end, size, total, at = 0;
  unsigned char *fetched = NULL, *plain = NULL;
  size_t w;
  int rc = 1;
  ssekit_result r = ssekit_read_plan_range(plan, spec, strlen(spec), stored_len, &rg);
  if (r == SSEKIT_RESULT_INVALID_RANGE) return -1;
  if (r == SSEKIT_RESULT_RANGE_NOT_SATISFIABLE) {
    fprintf(stderr, "InvalidRange 416 The requested range is not satisfiable\n");
    return 2;
  }
  if (r || (r = ssekit_range_plaintext(rg, &start, &end, &size))) { rc = fail("range", r, NULL); goto out; }
  total = ssekit_range_fetch_total(rg);
  fetched = malloc(total ? total : 1);
  plain = malloc(end - start ? end - start : 1);
  if (!fetched || !plain) { perror("objstore"); goto out; }
  for (size_t i = 0; i < ssekit_range_fetch_count(rg); i++) {
    uint64_t off, len;
    if ((r = ssekit_range_fetch(rg, i, &off, &len))) { rc = fail("range", r, NULL); goto out; }
    if (pread(fd, fetched + at, len, (off_t)off) != (ssize_t)len) {
      rc = fail_errno("pread", "data"); goto out;
    }
    at += len;
  }
  if ((r = ssekit_range_open(rg, plan, fetched, total, plain, end - start, &w))) {
    rc = fail("open", r, NULL); goto out;
  }
  fprintf(stderr, "content-range: bytes %llu-%llu/%llu\n", (unsigned long long)start,
          (unsigned long long)end - 1, (unsigned long long)size);
  print_headers(stderr, ssekit_read_plan_response_headers(plan));
  rc = fwrite(plain, 1, w, stdout) == w ? 0 : fail_errno("write", "stdout");
out:
  ssekit_range_free(rg);
  free(fetched); free(plain);
  return rc;
}

/* The whole object through an opener: each chunk's plaintext is released only once it
 * authenticated, so what reaches stdout is always authentic. On a failure mid-stream, an HTTP server
 * has already sent part of the body: it must abort the connection, not end the response cleanly. */
static int get_stream(ssekit_read_plan *plan, int fd) {
  ssekit_opener *op = NULL;
  unsigned char *in = malloc(PIECE), *out = NULL;
  size_t cap = 0, n, w;
  int rc = 1;
  ssekit_result r = ssekit_read_plan_opener(plan, 0, &op);
  if (r) { rc = fail("opener", r, NULL); goto out; }
  print_headers(stderr, ssekit_read_plan_response_headers(plan));
  for (;;) {
    ssize_t got = read(fd, in, PIECE);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) { rc = fail_errno("read", "data"); goto out; }
    if (got == 0) break;
    if ((r = ssekit_opener_update_len(op, (size_t)got, &n))) { rc = fail("open", r, NULL); goto out; }
    reserve(&out, &cap, n + 1);
    if ((r = ssekit_opener_update(op, in, (size_t)got, out, cap, &w))) {
      fflush(stdout); /* what was written is authentic; nothing of the failed piece is */
      rc = fail("open", r, NULL); goto out;
    }
    if (fwrite(out, 1, w, stdout) != w) { rc = fail_errno("write", "stdout"); goto out; }
  }
  /* The end: TRUNCATED if stored bytes are missing. Only now is the body known complete. */
  if ((r = ssekit_opener_finish(op))) { fflush(stdout); rc = fail("open", r, NULL); goto out; }
  rc = fflush(stdout) ? fail_errno("write", "stdout") : 0;
out:
  ssekit_opener_free(op);
  free(in); free(out);
  return rc;
}

static int get_or_head(bool head, const char *dir, const char *bucket, const char *key,
                       ssekit_engine *e, ssekit_request *req, ssekit_bucket *bk, const struct options *o) {
  char *metap = path_of(dir, bucket, key, ".meta"), *data = path_of(dir, bucket, key, ".data");
  size_t mlen;
  unsigned char *mbytes = slurp(metap, &mlen);
  ssekit_meta *meta = NULL;
  ssekit_read_plan *plan = NULL;
  ssekit_s3_error *err = NULL;
  uint64_t size;
  int rc = 1, fd = -1;
  ssekit_result r;
  struct stat st;

  if (!mbytes) { /* our own answer: the library knows nothing of what is stored where */
    fprintf(stderr, "NoSuchKey 404 The specified key does not exist.\n");
    rc = 2; goto out;
  }
  /* Parsing does not authenticate: the plan checks the metadata's MAC when it opens data. */
  if ((r = ssekit_meta_parse(mbytes, mlen, &meta))) { rc = fail("metadata", r, NULL); goto out; }
  /* GET unwraps the data key(s) here (the key service and the audit log see it); HEAD does not. */
  if ((r = ssekit_engine_plan_read(e, req, bk, meta, &plan, &err))) { rc = fail("plan", r, err); goto out; }
  if ((r = ssekit_read_plan_size(plan, &size))) { rc = fail("size", r, NULL); goto out; }
  if (head) {
    print_headers(stdout, ssekit_read_plan_response_headers(plan));
    printf("content-length: %llu\n", (unsigned long long)size);
    rc = 0; goto out;
  }
  /* Single-part objects only here (a multipart one is one opener per part: ssekit_meta_part_count). */
  if ((fd = open(data, O_RDONLY)) < 0 || fstat(fd, &st)) { rc = fail_errno("open", data); goto out; }
  rc = o->range ? get_range(plan, fd, (uint64_t)st.st_size, o->range) : -1;
  if (rc == -1) rc = get_stream(plan, fd);
out:
  if (fd >= 0) close(fd);
  ssekit_read_plan_free(plan); /* zeroes the data key */
  ssekit_meta_free(meta);
  free(mbytes); free(metap); free(data);
  return rc;
}

/* ---- LIST: metadata only, no key is used. ---- */

static int list(const char *dir, const char *bucket) {
  char *bdir = path_of(dir, bucket, "", "");
  DIR *d = opendir(bdir);
  struct dirent *ent;
  if (!d) { int rc = fail_errno("open", bdir); free(bdir); return rc; }
  while ((ent = readdir(d)) != NULL) {
    size_t n = strlen(ent->d_name), mlen;
    if (n <= 5 || ent->d_name[0] == '.' || strcmp(ent->d_name + n - 5, ".meta")) continue;
    char *p = path_of(dir, bucket, ent->d_name, "");
    unsigned char *m = slurp(p, &mlen);
    ssekit_meta *meta = NULL;
    if (m && ssekit_meta_parse(m, mlen, &meta) == SSEKIT_RESULT_OK)
      printf("%.*s %llu\n", (int)(n - 5), ent->d_name, (unsigned long long)ssekit_meta_size(meta));
    ssekit_meta_free(meta); free(m); free(p);
  }
  closedir(d); free(bdir);
  return 0;
}

/* ---- Key management (the local keyring; the same calls drive PKCS#11 and KMS). ---- */

static int manage_key(ssekit_engine *e, bool create, const char *id) {
  ssekit_bytes *info = NULL;
  ssekit_result r = create ? ssekit_engine_create_key(e, id, strlen(id), NULL, 0, 0, &info)
                           : ssekit_engine_set_key_enabled(e, id, strlen(id), false, &info);
  if (r) return fail(create ? "create-key" : "disable-key", r, NULL);
  printf("%.*s\n", (int)ssekit_bytes_len(info), (const char *)ssekit_bytes_data(info));
  ssekit_bytes_free(info);
  return 0;
}

static int usage(void) {
  fprintf(stderr, "usage: objstore DIR put|get|head BUCKET KEY [--file PATH] [--range bytes=A-B]\n"
                  "         [-H 'name: value']... [--secure] [--principal ARN]\n"
                  "       objstore DIR list BUCKET\n"
                  "       objstore DIR create-key|disable-key ID\n");
  return 64;
}

int main(int argc, char **argv) {
  struct options o = {0};
  ssekit_engine *e = NULL;
  ssekit_request *req = NULL;
  ssekit_bucket *bk = NULL;
  ssekit_result r;
  int rc;
  if (argc < 4) return usage();
  const char *dir = argv[1], *cmd = argv[2], *bucket = argv[3], *key = argc > 4 ? argv[4] : NULL;
  bool is_put = !strcmp(cmd, "put"), is_get = !strcmp(cmd, "get"), is_head = !strcmp(cmd, "head");
  if (!strcmp(cmd, "list")) return list(dir, bucket);
  if ((is_put || is_get || is_head) && !key) return usage();
  /* Keys become file names here: refuse what would escape the bucket's directory. */
  if (key && (strchr(key, '/') || key[0] == '.' || strchr(bucket, '/') || bucket[0] == '.')) {
    fprintf(stderr, "InvalidArgument 400 objstore takes no '/' or leading '.' in names\n");
    return 2;
  }
  for (int i = 5; i < argc; i++) {
    bool more = i + 1 < argc;
    if (!strcmp(argv[i], "--secure")) o.secure = true;
    else if (more && !strcmp(argv[i], "--file")) o.file = argv[++i];
    else if (more && !strcmp(argv[i], "--range")) o.range = argv[++i];
    else if (more && !strcmp(argv[i], "--principal")) o.principal = argv[++i];
    else if (more && !strcmp(argv[i], "-H") && o.nheaders < MAX_HEADERS) o.headers[o.nheaders++] = argv[++i];
    else return usage();
  }
  if (mkdir(dir, 0755) && errno != EEXIST) return fail_errno("create", dir);
  if ((r = open_engine(dir, &e))) return fail("engine", r, NULL);

  if (!strcmp(cmd, "create-key") || !strcmp(cmd, "disable-key")) {
    rc = manage_key(e, cmd[0] == 'c', bucket);
  } else if (!is_put && !is_get && !is_head) {
    rc = usage();
  } else if ((r = make_request(is_put ? SSEKIT_OPERATION_PUT_OBJECT
                               : is_get ? SSEKIT_OPERATION_GET_OBJECT
                                        : SSEKIT_OPERATION_HEAD_OBJECT,
                               bucket, key, &o, &req))) {
    rc = fail("request", r, NULL);
  } else if ((r = load_bucket(dir, bucket, &bk))) {
    rc = fail("bucket configuration", r, NULL);
  } else {
    rc = is_put ? put(dir, bucket, key, e, req, bk, &o) : get_or_head(is_head, dir, bucket, key, e, req, bk, &o);
  }
  ssekit_bucket_free(bk);
  ssekit_request_free(req);
  ssekit_engine_free(e); /* after every plan, sealer and opener made from it */
  return rc;
}
