//! The S3 layer's plans: what a request may do and with which keys, then its data sealed or opened
//! whole, into the caller's buffer or in place.

use ::ssekit_engine::object::PartEntry;
use ::ssekit_engine::sse::{CopySource, Operation, PartPlan, ReadPlan, WritePlan};

use crate::engine::ssekit_engine;
use crate::error::{Fail, boundary, boundary_s3, data_fail, guard, ssekit_result};
use crate::ptr;
use crate::request::{
    mode_code, ssekit_bucket, ssekit_headers, ssekit_meta, ssekit_part_entry, ssekit_request,
    ssekit_s3_error,
};
use crate::stream::ssekit_sealer;

/// A write's plan (PutObject, PostObject, CopyObject's target, CreateMultipartUpload): the mode and
/// fresh data key(s) chosen, the response headers. One per request; not shared between threads.
/// Free it with `ssekit_write_plan_free` (the data keys are zeroed).
pub struct ssekit_write_plan {
    plan: Option<WritePlan>,
    headers: ssekit_headers,
}

/// A read's plan (GetObject, HeadObject, the source of a copy): the object's keys unwrapped (none
/// for HEAD), the response headers. One per request. Free it with `ssekit_read_plan_free`.
pub struct ssekit_read_plan {
    pub(crate) plan: ReadPlan,
    headers: ssekit_headers,
}

/// An UploadPart's plan: the upload's keys, checked against the request. Free it with
/// `ssekit_part_plan_free`.
pub struct ssekit_part_plan {
    plan: PartPlan,
    headers: ssekit_headers,
}

fn write_plan(plan: WritePlan) -> *mut ssekit_write_plan {
    let headers = ssekit_headers {
        list: plan.response_headers().to_vec(),
    };
    ptr::into_raw(ssekit_write_plan {
        plan: Some(plan),
        headers,
    })
}

fn read_plan(plan: ReadPlan) -> *mut ssekit_read_plan {
    let headers = ssekit_headers {
        list: plan.response_headers().to_vec(),
    };
    ptr::into_raw(ssekit_read_plan { plan, headers })
}

fn part_plan(plan: PartPlan) -> *mut ssekit_part_plan {
    let headers = ssekit_headers {
        list: plan.response_headers().to_vec(),
    };
    ptr::into_raw(ssekit_part_plan { plan, headers })
}

/// Plans a write: evaluates the bucket's policy on the raw request, checks the SSE headers, picks
/// the mode (the request's, else the bucket's default, else SSE-S3) and makes a fresh data key
/// wrapped as the mode says. `request`'s operation must be PutObject, PostObject or
/// CreateMultipartUpload (CopyObject goes through `ssekit_engine_plan_copy`).
///
/// On success `*plan_out` is a new plan (free it with `ssekit_write_plan_free`). When S3 would
/// refuse the request the result is `SSEKIT_RESULT_S3_ERROR` and, if `error_out` is not NULL,
/// `*error_out` is a new `ssekit_s3_error` to send (free it with `ssekit_s3_error_free`).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_plan_write(
    engine: *const ssekit_engine,
    request: *const ssekit_request,
    bucket: *const ssekit_bucket,
    plan_out: *mut *mut ssekit_write_plan,
    error_out: *mut *mut ssekit_s3_error,
) -> ssekit_result {
    boundary_s3(error_out, || {
        let out = ptr::out(plan_out, "plan_out")?;
        let e = ptr::get(engine, "engine")?;
        let r = ptr::get(request, "request")?;
        let b = ptr::get(bucket, "bucket")?;
        if r.op == Operation::CopyObject {
            return Err(Fail::invalid(
                "CopyObject is planned by ssekit_engine_plan_copy",
            ));
        }
        let plan = e.sse.plan_write(r.op, &r.headers, &r.ctx, &b.config)?;
        out.write(write_plan(plan));
        Ok(())
    })
}

/// Plans a read of a stored object (`request`'s operation GetObject or HeadObject) whose stored
/// metadata is `meta`: the policy, the SSE-C key, and for GET the data keys unwrapped. A HEAD plan
/// calls no key service (S3 calls none on HEAD) and opens no data; it gives the size and response
/// headers. For an SSE-C object it does unwrap the data key under the request's customer key (no
/// provider involved, recorded as `sse_c_unwrap`): that is how a wrong key gets S3's 403.
/// Results and errors as `ssekit_engine_plan_write`; free the plan with `ssekit_read_plan_free`.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_plan_read(
    engine: *const ssekit_engine,
    request: *const ssekit_request,
    bucket: *const ssekit_bucket,
    meta: *const ssekit_meta,
    plan_out: *mut *mut ssekit_read_plan,
    error_out: *mut *mut ssekit_s3_error,
) -> ssekit_result {
    boundary_s3(error_out, || {
        let out = ptr::out(plan_out, "plan_out")?;
        let e = ptr::get(engine, "engine")?;
        let r = ptr::get(request, "request")?;
        let b = ptr::get(bucket, "bucket")?;
        let m = ptr::get(meta, "meta")?;
        let plan = e
            .sse
            .plan_read(r.op, &r.headers, &r.ctx, &b.config, &m.meta)?;
        out.write(read_plan(plan));
        Ok(())
    })
}

/// Plans a CopyObject: `request` is the copy (operation CopyObject, the target bucket and key, the
/// headers, the source's SSE-C key in `x-amz-copy-source-server-side-encryption-customer-*`);
/// `source` names the source object (its bucket and key; principal and TLS are taken from
/// `request`), `source_bucket` is its bucket's configuration (whose policy must allow the read) and
/// `source_meta` its stored metadata. On success `*read_out` opens the source and `*write_out`
/// seals the target (the request's mode, else the target bucket's default: the source's mode is
/// not kept). Errors as `ssekit_engine_plan_write`.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_plan_copy(
    engine: *const ssekit_engine,
    request: *const ssekit_request,
    bucket: *const ssekit_bucket,
    source: *const ssekit_request,
    source_bucket: *const ssekit_bucket,
    source_meta: *const ssekit_meta,
    read_out: *mut *mut ssekit_read_plan,
    write_out: *mut *mut ssekit_write_plan,
    error_out: *mut *mut ssekit_s3_error,
) -> ssekit_result {
    boundary_s3(error_out, || {
        let (ro, wo) = (
            ptr::out(read_out, "read_out")?,
            ptr::out(write_out, "write_out")?,
        );
        let e = ptr::get(engine, "engine")?;
        let r = ptr::get(request, "request")?;
        let b = ptr::get(bucket, "bucket")?;
        let (src_ctx, sb, sm) = copy_source(r, source, source_bucket, source_meta)?;
        let (read, write) = e.sse.plan_copy(
            &r.headers,
            &r.ctx,
            &b.config,
            CopySource {
                ctx: &src_ctx,
                bucket: sb,
                meta: sm,
            },
        )?;
        ro.write(read_plan(read));
        wo.write(write_plan(write));
        Ok(())
    })
}

/// A copy's source from its handles: its context as the requester reads it (the source's bucket
/// and key, the request's principal and TLS flag), its bucket's configuration and its metadata.
fn copy_source<'a>(
    request: &ssekit_request,
    source: *const ssekit_request,
    source_bucket: *const ssekit_bucket,
    source_meta: *const ssekit_meta,
) -> Result<
    (
        ::ssekit_engine::sse::RequestContext,
        &'a ::ssekit_engine::sse::BucketConfig,
        &'a ::ssekit_engine::object::ObjectMeta,
    ),
    Fail,
> {
    let s = ptr::get(source, "source")?;
    let sb = ptr::get(source_bucket, "source_bucket")?;
    let sm = ptr::get(source_meta, "source_meta")?;
    let mut ctx = s.ctx.clone();
    ctx.principal = request.ctx.principal.clone();
    ctx.secure = request.ctx.secure;
    Ok((ctx, &sb.config, &sm.meta))
}

/// Plans an UploadPart of part `part_number` (1..=10000) of the upload whose stored metadata is
/// `upload` (what `ssekit_write_plan_upload_meta` gave at CreateMultipartUpload): an SSE-C upload's
/// part must carry the upload's key. Results and errors as `ssekit_engine_plan_write`; free the
/// plan with `ssekit_part_plan_free`.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_plan_part(
    engine: *const ssekit_engine,
    request: *const ssekit_request,
    bucket: *const ssekit_bucket,
    upload: *const ssekit_meta,
    part_number: u32,
    plan_out: *mut *mut ssekit_part_plan,
    error_out: *mut *mut ssekit_s3_error,
) -> ssekit_result {
    boundary_s3(error_out, || {
        let out = ptr::out(plan_out, "plan_out")?;
        let e = ptr::get(engine, "engine")?;
        let r = ptr::get(request, "request")?;
        let b = ptr::get(bucket, "bucket")?;
        let u = ptr::get(upload, "upload")?;
        let plan = e
            .sse
            .plan_part(&r.headers, &r.ctx, &b.config, &u.meta, part_number)?;
        out.write(part_plan(plan));
        Ok(())
    })
}

/// Plans an UploadPartCopy: the source's read (as `ssekit_engine_plan_copy`) and the part's seal
/// (as `ssekit_engine_plan_part`).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_plan_part_copy(
    engine: *const ssekit_engine,
    request: *const ssekit_request,
    bucket: *const ssekit_bucket,
    upload: *const ssekit_meta,
    part_number: u32,
    source: *const ssekit_request,
    source_bucket: *const ssekit_bucket,
    source_meta: *const ssekit_meta,
    read_out: *mut *mut ssekit_read_plan,
    part_out: *mut *mut ssekit_part_plan,
    error_out: *mut *mut ssekit_s3_error,
) -> ssekit_result {
    boundary_s3(error_out, || {
        let (ro, po) = (
            ptr::out(read_out, "read_out")?,
            ptr::out(part_out, "part_out")?,
        );
        let e = ptr::get(engine, "engine")?;
        let r = ptr::get(request, "request")?;
        let b = ptr::get(bucket, "bucket")?;
        let u = ptr::get(upload, "upload")?;
        let (src_ctx, sb, sm) = copy_source(r, source, source_bucket, source_meta)?;
        let (read, part) = e.sse.plan_part_copy(
            &r.headers,
            &r.ctx,
            &b.config,
            &u.meta,
            part_number,
            CopySource {
                ctx: &src_ctx,
                bucket: sb,
                meta: sm,
            },
        )?;
        ro.write(read_plan(read));
        po.write(part_plan(part));
        Ok(())
    })
}

fn part_rows(parts: *const ssekit_part_entry, count: usize) -> Result<Vec<PartEntry>, Fail> {
    if count > 10_000 {
        return Err(Fail::invalid(format!("{count} parts: S3 allows 10000")));
    }
    Ok(ptr::items(parts, count, "parts")?
        .iter()
        .map(|&p| PartEntry::from(p))
        .collect())
}

/// CompleteMultipartUpload: the part table (`count` rows in ascending part-number order, as
/// `ssekit_part_plan_seal_into` or `ssekit_sealer_finish` gave them) written into the upload's
/// metadata and authenticated. An SSE-C upload needs its key here too. On success `*meta_out` is
/// the object's metadata to store (free it with `ssekit_meta_free`) and `*headers_out` the
/// response headers (free them with `ssekit_headers_free`). Errors as `ssekit_engine_plan_write`
/// (400 InvalidPartOrder, MalformedXML for no parts, EntityTooLarge).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_complete(
    engine: *const ssekit_engine,
    request: *const ssekit_request,
    bucket: *const ssekit_bucket,
    upload: *const ssekit_meta,
    parts: *const ssekit_part_entry,
    count: usize,
    meta_out: *mut *mut ssekit_meta,
    headers_out: *mut *mut ssekit_headers,
    error_out: *mut *mut ssekit_s3_error,
) -> ssekit_result {
    boundary_s3(error_out, || {
        let (mo, ho) = (
            ptr::out(meta_out, "meta_out")?,
            ptr::out(headers_out, "headers_out")?,
        );
        let e = ptr::get(engine, "engine")?;
        let r = ptr::get(request, "request")?;
        let b = ptr::get(bucket, "bucket")?;
        let u = ptr::get(upload, "upload")?;
        let rows = part_rows(parts, count)?;
        let (meta, headers) = e
            .sse
            .complete(&r.headers, &r.ctx, &b.config, &u.meta, &rows)?;
        mo.write(ptr::into_raw(ssekit_meta { meta }));
        ho.write(ptr::into_raw(ssekit_headers { list: headers }));
        Ok(())
    })
}

/// Evaluates the bucket's policy on `request` as the plans do (for requests the S3 layer does not
/// plan, e.g. a server's own DeleteObject). Errors as `ssekit_engine_plan_write` (403 AccessDenied).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_engine_authorize(
    engine: *const ssekit_engine,
    request: *const ssekit_request,
    bucket: *const ssekit_bucket,
    error_out: *mut *mut ssekit_s3_error,
) -> ssekit_result {
    boundary_s3(error_out, || {
        let e = ptr::get(engine, "engine")?;
        let r = ptr::get(request, "request")?;
        let b = ptr::get(bucket, "bucket")?;
        e.sse.authorize(r.op, &r.headers, &r.ctx, &b.config)?;
        Ok(())
    })
}

/// Refuses a body over the format's limit (whose stored length could not be computed).
fn within_format(plaintext_len: u64) -> Result<(), Fail> {
    if plaintext_len > ::ssekit_engine::object::MAX_OBJECT_SIZE {
        return Err(Fail::new(
            ssekit_result::SSEKIT_RESULT_TOO_LARGE,
            format!("{plaintext_len} bytes: over the format's limit"),
        ));
    }
    Ok(())
}

fn live(p: &ssekit_write_plan) -> Result<&WritePlan, Fail> {
    p.plan
        .as_ref()
        .ok_or_else(|| Fail::state("the write plan was already finished"))
}

/// The plan's `ssekit_mode` (0 for NULL or a finished plan).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_write_plan_mode(plan: *const ssekit_write_plan) -> u32 {
    guard(0, || {
        ptr::get(plan, "plan")
            .ok()
            .and_then(|p| p.plan.as_ref())
            .map_or(0, |p| mode_code(p.mode()))
    })
}

/// The response headers to send, borrowed from the plan until it is freed (NULL for NULL).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_write_plan_response_headers(
    plan: *const ssekit_write_plan,
) -> *const ssekit_headers {
    guard(std::ptr::null(), || {
        ptr::get(plan, "plan").map_or(std::ptr::null(), |p| &p.headers)
    })
}

/// The stored size of a body of `plaintext_len` bytes under this plan, in `*stored_len_out`.
/// `SSEKIT_RESULT_TOO_LARGE` past the format's limit.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_write_plan_stored_len(
    plan: *const ssekit_write_plan,
    plaintext_len: u64,
    stored_len_out: *mut u64,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(stored_len_out, "stored_len_out")?;
        let p = live(ptr::get(plan, "plan")?)?;
        within_format(plaintext_len)?;
        out.write(p.stored_len(plaintext_len));
        Ok(())
    })
}

/// Seals a single-part object's body (`plaintext_len` bytes) into `out` (`out_cap` bytes, at least
/// `ssekit_write_plan_stored_len`; it must not overlap the plaintext: see `_in_place`). Writes the
/// stored length to `*written_out`. Then store the data and `ssekit_write_plan_finish`'s metadata.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_write_plan_seal_into(
    plan: *const ssekit_write_plan,
    plaintext: *const u8,
    plaintext_len: usize,
    out: *mut u8,
    out_cap: usize,
    written_out: *mut usize,
) -> ssekit_result {
    boundary(|| {
        let w = ptr::out(written_out, "written_out")?;
        let p = live(ptr::get(plan, "plan")?)?;
        ptr::disjoint(plaintext, plaintext_len, out, out_cap)?;
        let input = ptr::bytes(plaintext, plaintext_len, "plaintext")?;
        let need = p.stored_len(input.len() as u64);
        ptr::room(need, out_cap)?;
        let dst = ptr::bytes_mut(out, out_cap, "out")?;
        w.write(p.seal_into(input, dst).map_err(data_fail)?);
        Ok(())
    })
}

/// Seals a single-part object's body in place: `buf` (`buf_cap` bytes, at least
/// `ssekit_write_plan_stored_len(plaintext_len)`) holds the plaintext in its first
/// `plaintext_len` bytes; afterwards it holds the stored data, whose length goes to `*written_out`.
/// No copy of the data is made (DSSE-KMS excepted, whose two layers seal through a buffer).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_write_plan_seal_in_place(
    plan: *const ssekit_write_plan,
    buf: *mut u8,
    buf_cap: usize,
    plaintext_len: usize,
    written_out: *mut usize,
) -> ssekit_result {
    boundary(|| {
        let w = ptr::out(written_out, "written_out")?;
        let p = live(ptr::get(plan, "plan")?)?;
        if plaintext_len > buf_cap {
            return Err(Fail::invalid("plaintext_len is larger than buf_cap"));
        }
        let need = p.stored_len(plaintext_len as u64);
        ptr::room(need, buf_cap)?;
        let b = ptr::bytes_mut(buf, buf_cap, "buf")?;
        w.write(p.seal_in_place(b, plaintext_len).map_err(data_fail)?);
        Ok(())
    })
}

/// A streaming sealer of part `part` (0: the single-part object) under this plan; see
/// `ssekit_sealer_update`. On success `*sealer_out` is a new sealer (free it with
/// `ssekit_sealer_free`); the plan may be freed or finished before it.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_write_plan_sealer(
    plan: *const ssekit_write_plan,
    part: u32,
    sealer_out: *mut *mut ssekit_sealer,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(sealer_out, "sealer_out")?;
        let p = live(ptr::get(plan, "plan")?)?;
        out.write(ssekit_sealer::new(p.sealer(part).map_err(data_fail)?));
        Ok(())
    })
}

/// The upload's metadata (CreateMultipartUpload: store it with the upload and hand it to
/// `ssekit_engine_plan_part` and `ssekit_engine_complete`), as a new handle in `*meta_out` (free it
/// with `ssekit_meta_free`).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_write_plan_upload_meta(
    plan: *const ssekit_write_plan,
    meta_out: *mut *mut ssekit_meta,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(meta_out, "meta_out")?;
        let p = live(ptr::get(plan, "plan")?)?;
        out.write(ptr::into_raw(ssekit_meta {
            meta: p.upload_meta().clone(),
        }));
        Ok(())
    })
}

/// The metadata of the single-part object of `size` plaintext bytes sealed under this plan,
/// authenticated: store it beside the data. The plan is finished: it seals nothing more (free it
/// still). On success `*meta_out` is a new handle (free it with `ssekit_meta_free`).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_write_plan_finish(
    plan: *mut ssekit_write_plan,
    size: u64,
    meta_out: *mut *mut ssekit_meta,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(meta_out, "meta_out")?;
        let p = ptr::get_mut(plan, "plan")?;
        let plan = p
            .plan
            .take()
            .ok_or_else(|| Fail::state("the write plan was already finished"))?;
        out.write(ptr::into_raw(ssekit_meta {
            meta: plan.finish(size).map_err(data_fail)?,
        }));
        Ok(())
    })
}

/// Frees a write plan (NULL is ignored); its data keys are zeroed.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_write_plan_free(plan: *mut ssekit_write_plan) {
    guard((), || ptr::free(plan));
}

/// The object's plaintext size (what clients see as Content-Length) in `*size_out`, as the stored
/// metadata says: it is authenticated when data opens (every open checks it), not here. Whoever can
/// write the store can make it lie, so before allocating a buffer of this size check it against
/// the stored length (a plaintext is always shorter than its stored object); a GET that streams
/// through `ssekit_read_plan_opener` fails at the first chunk if it lied.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_read_plan_size(
    plan: *const ssekit_read_plan,
    size_out: *mut u64,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(size_out, "size_out")?;
        out.write(ptr::get(plan, "plan")?.plan.size());
        Ok(())
    })
}

/// The response headers to send, borrowed from the plan until it is freed (NULL for NULL).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_read_plan_response_headers(
    plan: *const ssekit_read_plan,
) -> *const ssekit_headers {
    guard(std::ptr::null(), || {
        ptr::get(plan, "plan").map_or(std::ptr::null(), |p| &p.headers)
    })
}

/// The stored length of part `part` (0: a single-part object) in `*stored_len_out` (for a GET
/// with `partNumber`, or to stream one part).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_read_plan_part_stored_len(
    plan: *const ssekit_read_plan,
    part: u32,
    stored_len_out: *mut u64,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(stored_len_out, "stored_len_out")?;
        out.write(
            ptr::get(plan, "plan")?
                .plan
                .stored_part_len(part)
                .map_err(data_fail)?,
        );
        Ok(())
    })
}

/// Opens the whole stored object (`stored_len` bytes, every part back to back) into `out`
/// (`out_cap` bytes, at least the object's size; not overlapping `stored`). Writes the plaintext
/// length to `*written_out`. Nothing is released unless every chunk and the metadata authenticate:
/// on a failure after decryption began, `out` is zeroed (it is scratch space, never a result).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_read_plan_open_into(
    plan: *const ssekit_read_plan,
    stored: *const u8,
    stored_len: usize,
    out: *mut u8,
    out_cap: usize,
    written_out: *mut usize,
) -> ssekit_result {
    boundary(|| {
        let w = ptr::out(written_out, "written_out")?;
        let p = &ptr::get(plan, "plan")?.plan;
        ptr::disjoint(stored, stored_len, out, out_cap)?;
        let input = ptr::bytes(stored, stored_len, "stored")?;
        ptr::room(p.size(), out_cap)?;
        let dst = ptr::bytes_mut(out, out_cap, "out")?;
        w.write(p.open_into(input, dst).map_err(data_fail)?);
        Ok(())
    })
}

/// Opens the stored object held in `buf` (exactly its `buf_len` stored bytes) in place: on success
/// the plaintext is `buf`'s first `*plaintext_len_out` bytes; on failure `buf` holds no plaintext.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_read_plan_open_in_place(
    plan: *const ssekit_read_plan,
    buf: *mut u8,
    buf_len: usize,
    plaintext_len_out: *mut usize,
) -> ssekit_result {
    boundary(|| {
        let w = ptr::out(plaintext_len_out, "plaintext_len_out")?;
        let p = &ptr::get(plan, "plan")?.plan;
        let b = ptr::bytes_mut(buf, buf_len, "buf")?;
        w.write(p.open_in_place(b).map_err(data_fail)?);
        Ok(())
    })
}

/// Frees a read plan (NULL is ignored); its data keys are zeroed.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_read_plan_free(plan: *mut ssekit_read_plan) {
    guard((), || ptr::free(plan));
}

/// The response headers to send, borrowed from the plan until it is freed (NULL for NULL).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_part_plan_response_headers(
    plan: *const ssekit_part_plan,
) -> *const ssekit_headers {
    guard(std::ptr::null(), || {
        ptr::get(plan, "plan").map_or(std::ptr::null(), |p| &p.headers)
    })
}

/// The stored size of a part of `plaintext_len` bytes in `*stored_len_out`.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_part_plan_stored_len(
    plan: *const ssekit_part_plan,
    plaintext_len: u64,
    stored_len_out: *mut u64,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(stored_len_out, "stored_len_out")?;
        let p = &ptr::get(plan, "plan")?.plan;
        within_format(plaintext_len)?;
        out.write(p.stored_len(plaintext_len));
        Ok(())
    })
}

/// Seals the part's body into `out` (at least `ssekit_part_plan_stored_len` bytes, not overlapping
/// the plaintext), with a fresh salt; writes the stored length to `*written_out` and the part's row
/// for `ssekit_engine_complete` to `*entry_out` (keep it with the part).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_part_plan_seal_into(
    plan: *const ssekit_part_plan,
    plaintext: *const u8,
    plaintext_len: usize,
    out: *mut u8,
    out_cap: usize,
    written_out: *mut usize,
    entry_out: *mut ssekit_part_entry,
) -> ssekit_result {
    boundary(|| {
        let w = ptr::out(written_out, "written_out")?;
        let eo = ptr::out(entry_out, "entry_out")?;
        let p = &ptr::get(plan, "plan")?.plan;
        ptr::disjoint(plaintext, plaintext_len, out, out_cap)?;
        let input = ptr::bytes(plaintext, plaintext_len, "plaintext")?;
        let need = p.stored_len(input.len() as u64);
        ptr::room(need, out_cap)?;
        let dst = ptr::bytes_mut(out, out_cap, "out")?;
        let (n, entry) = p.seal_into(input, dst).map_err(data_fail)?;
        w.write(n);
        eo.write(entry.into());
        Ok(())
    })
}

/// A streaming sealer of this part (see `ssekit_sealer_update`); `ssekit_sealer_finish` gives its
/// row. On success `*sealer_out` is a new sealer (free it with `ssekit_sealer_free`).
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_part_plan_sealer(
    plan: *const ssekit_part_plan,
    sealer_out: *mut *mut ssekit_sealer,
) -> ssekit_result {
    boundary(|| {
        let out = ptr::out(sealer_out, "sealer_out")?;
        let p = &ptr::get(plan, "plan")?.plan;
        out.write(ssekit_sealer::new(p.sealer().map_err(data_fail)?));
        Ok(())
    })
}

/// Frees a part plan (NULL is ignored); its data keys are zeroed.
#[unsafe(no_mangle)]
pub extern "C" fn ssekit_part_plan_free(plan: *mut ssekit_part_plan) {
    guard((), || ptr::free(plan));
}
