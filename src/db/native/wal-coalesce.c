/*
** A SQLite VFS shim that writes a transaction's WAL frames in a few large writes instead of two
** system calls a frame (docs/storage.md "WAL writes").
**
** SQLite writes each WAL frame as two pwrite calls: its 24-byte header, then its page. On the
** VMs SegQL is measured on a call costs 1-2.5 us before the bytes it copies (a frame written as
** SQLite writes it 2.5 us, 16 frames in one call 0.36 us a frame), so a streaming ingest's commit
** (about four frames an event) spent more in system calls than in its b-trees. This shim holds the frames SQLite appends to the end of the log in a buffer and
** writes them as one call when the commit frame's page arrives; nothing else changes.
**
** Why that is safe:
** - Readers (other connections, the checkpointer) only read frames a commit has published in the
**   wal-index header, and SQLite publishes it after walFrames returns. The commit frame is the
**   last one walFrames appends, and its page write flushes the buffer before that write returns,
**   so a published frame is always in the file, and a failed flush fails the commit as a failed
**   write would.
** - Only appends are held: a frame header written below the end of what the transaction has
**   written (checksums rewritten), a page rewritten in place, a write of any other shape goes
**   straight through after the buffer.
** - Any other use of the log file (read, sync, size, truncate, file control, close) flushes the
**   buffer first, so SQLite never sees the file without what it wrote.
** - What is left when the write transaction ends (its wal write lock released) belongs to a
**   transaction that never committed (a rolled-back one whose pages spilled): it is dropped, so
**   it can never be written later over frames another connection has since committed. That needs
**   the log's database file (the lock is taken on it); a log whose database is not found is
**   written straight through.
** A process that dies with frames in the buffer loses only frames no commit had published: what
** SQLite's recovery would have discarded anyway.
**
** Built as a loadable extension against the SQLite better-sqlite3 carries (scripts/build-native.ts)
** and registered as the default VFS for the process (src/db/wal-coalesce.ts).
*/
#include "sqlite3ext.h"
SQLITE_EXTENSION_INIT1
#include <string.h>

#define WAL_FRAME_HEADER 24
#define MAX_PAGE 65536
/*
** The unix VFS writes at most 17 bits' worth of bytes a call (seekAndWriteFd masks the size: it
** expects a page at most), so a buffer holds under 128 KiB: 31 frames of 4 KiB.
*/
#define BUFFER_BYTES 0x1ffff
/* WAL_WRITE_LOCK in sqlite3.c: the first of the wal-index's locks. */
#define WAL_WRITE_LOCK 0

typedef struct WcFile WcFile;
struct WcFile {
  sqlite3_file base;
  sqlite3_file *real;
  /* The name SQLite opened a main database file with; a log finds its database by it. */
  const char *name;
  int isWal;
  /* A main database file's log (NULL until its log is opened), or a log's database. */
  WcFile *partner;
  WcFile *nextMain;
  unsigned char *buf;
  int bufLen;
  sqlite3_int64 bufOffset;
  /* The log's page size, from the last page held (the largest possible until one is). */
  int pageSize;
  /* The last buffered write is a frame's header, waiting for its page. */
  int pendingHeader;
  int pendingCommit;
  /* Past every byte the current write transaction has written to the log. */
  sqlite3_int64 appendEnd;
};

static sqlite3_vfs wcVfs;
static sqlite3_vfs *realVfs;
static WcFile *mains;
static sqlite3_mutex *mainsMutex;
static sqlite3_int64 framesHeld;
static sqlite3_int64 bufferWrites;

#define REAL(p) (((WcFile *)(p))->real)

static int wcFlush(WcFile *p) {
  int rc = SQLITE_OK;
  if (p->bufLen > 0) {
    rc = p->real->pMethods->xWrite(p->real, p->buf, p->bufLen, p->bufOffset);
    __atomic_fetch_add(&bufferWrites, 1, __ATOMIC_RELAXED);
  }
  p->bufLen = 0;
  p->pendingHeader = 0;
  p->pendingCommit = 0;
  return rc;
}

/* The end of a write transaction: nothing held is committed, and the next appends where it left off. */
static void wcEndTransaction(WcFile *p) {
  p->bufLen = 0;
  p->pendingHeader = 0;
  p->pendingCommit = 0;
  p->appendEnd = 0;
}

static int wcClose(sqlite3_file *f) {
  WcFile *p = (WcFile *)f;
  int rc = SQLITE_OK;
  if (p->isWal) rc = wcFlush(p);
  sqlite3_mutex_enter(mainsMutex);
  if (p->partner) p->partner->partner = NULL;
  p->partner = NULL;
  if (!p->isWal && p->name) {
    WcFile **at = &mains;
    while (*at && *at != p) at = &(*at)->nextMain;
    if (*at) *at = p->nextMain;
  }
  sqlite3_mutex_leave(mainsMutex);
  sqlite3_free(p->buf);
  p->buf = NULL;
  int closed = p->real->pMethods ? p->real->pMethods->xClose(p->real) : SQLITE_OK;
  return rc != SQLITE_OK ? rc : closed;
}

static int wcRead(sqlite3_file *f, void *z, int n, sqlite3_int64 off) {
  WcFile *p = (WcFile *)f;
  if (p->isWal && p->bufLen > 0) {
    int rc = wcFlush(p);
    if (rc != SQLITE_OK) return rc;
  }
  return p->real->pMethods->xRead(p->real, z, n, off);
}

static int wcWrite(sqlite3_file *f, const void *z, int n, sqlite3_int64 off) {
  WcFile *p = (WcFile *)f;
  if (!p->isWal || !p->partner) return p->real->pMethods->xWrite(p->real, z, n, off);
  const sqlite3_int64 end = p->bufOffset + p->bufLen;
  if (p->pendingHeader && off == end && n <= MAX_PAGE) {
    /* The page of the frame whose header is held. */
    int commit = p->pendingCommit;
    if (p->bufLen + n > BUFFER_BYTES) {
      int rc = wcFlush(p);
      if (rc != SQLITE_OK) return rc;
      rc = p->real->pMethods->xWrite(p->real, z, n, off);
      if (off + n > p->appendEnd) p->appendEnd = off + n;
      return rc;
    }
    memcpy(p->buf + p->bufLen, z, n);
    p->bufLen += n;
    p->pendingHeader = 0;
    p->pendingCommit = 0;
    p->pageSize = n;
    if (off + n > p->appendEnd) p->appendEnd = off + n;
    __atomic_fetch_add(&framesHeld, 1, __ATOMIC_RELAXED);
    return commit ? wcFlush(p) : SQLITE_OK;
  }
  if (n == WAL_FRAME_HEADER && !p->pendingHeader && off >= p->appendEnd && (p->bufLen == 0 || off == end)) {
    /* A new frame's header, appended: held for its page. */
    if (!p->buf) {
      p->buf = sqlite3_malloc(BUFFER_BYTES);
      if (!p->buf) return p->real->pMethods->xWrite(p->real, z, n, off);
    }
    if (p->bufLen > 0 && p->bufLen + WAL_FRAME_HEADER + (p->pageSize ? p->pageSize : MAX_PAGE) > BUFFER_BYTES) {
      int rc = wcFlush(p);
      if (rc != SQLITE_OK) return rc;
    }
    if (p->bufLen == 0) p->bufOffset = off;
    memcpy(p->buf + p->bufLen, z, n);
    p->bufLen += n;
    p->pendingHeader = 1;
    /* Bytes 4-7 of a frame's header: the database's size in pages after a commit, else zero. */
    const unsigned char *h = (const unsigned char *)z;
    p->pendingCommit = (h[4] | h[5] | h[6] | h[7]) != 0;
    p->appendEnd = off + n;
    return SQLITE_OK;
  }
  int rc = wcFlush(p);
  if (rc != SQLITE_OK) return rc;
  rc = p->real->pMethods->xWrite(p->real, z, n, off);
  if (off + n > p->appendEnd) p->appendEnd = off + n;
  return rc;
}

static int wcTruncate(sqlite3_file *f, sqlite3_int64 size) {
  WcFile *p = (WcFile *)f;
  if (p->isWal) {
    int rc = wcFlush(p);
    if (rc != SQLITE_OK) return rc;
    if (p->appendEnd > size) p->appendEnd = size;
  }
  return p->real->pMethods->xTruncate(p->real, size);
}

static int wcSync(sqlite3_file *f, int flags) {
  WcFile *p = (WcFile *)f;
  if (p->isWal) {
    int rc = wcFlush(p);
    if (rc != SQLITE_OK) return rc;
  }
  return p->real->pMethods->xSync(p->real, flags);
}

static int wcFileSize(sqlite3_file *f, sqlite3_int64 *size) {
  WcFile *p = (WcFile *)f;
  if (p->isWal) {
    int rc = wcFlush(p);
    if (rc != SQLITE_OK) return rc;
  }
  return p->real->pMethods->xFileSize(p->real, size);
}

static int wcLock(sqlite3_file *f, int level) { return REAL(f)->pMethods->xLock(REAL(f), level); }
static int wcUnlock(sqlite3_file *f, int level) { return REAL(f)->pMethods->xUnlock(REAL(f), level); }
static int wcCheckReservedLock(sqlite3_file *f, int *out) {
  return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int wcFileControl(sqlite3_file *f, int op, void *arg) {
  WcFile *p = (WcFile *)f;
  if (p->isWal) {
    int rc = wcFlush(p);
    if (rc != SQLITE_OK) return rc;
  }
  if (op == SQLITE_FCNTL_VFSNAME) {
    int rc = p->real->pMethods->xFileControl(p->real, op, arg);
    if (rc == SQLITE_OK) *(char **)arg = sqlite3_mprintf("segql-wal/%z", *(char **)arg);
    return rc;
  }
  return p->real->pMethods->xFileControl(p->real, op, arg);
}

static int wcSectorSize(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int wcDeviceCharacteristics(sqlite3_file *f) {
  return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int wcShmMap(sqlite3_file *f, int page, int size, int extend, void volatile **out) {
  return REAL(f)->pMethods->xShmMap(REAL(f), page, size, extend, out);
}

static int wcShmLock(sqlite3_file *f, int offset, int n, int flags) {
  WcFile *p = (WcFile *)f;
  if ((flags & SQLITE_SHM_UNLOCK) && offset <= WAL_WRITE_LOCK && WAL_WRITE_LOCK < offset + n) {
    /* The write transaction is over: what is still held never committed (see the top). */
    sqlite3_mutex_enter(mainsMutex);
    if (p->partner) wcEndTransaction(p->partner);
    sqlite3_mutex_leave(mainsMutex);
  }
  return p->real->pMethods->xShmLock(p->real, offset, n, flags);
}

static void wcShmBarrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int wcShmUnmap(sqlite3_file *f, int deleteFlag) { return REAL(f)->pMethods->xShmUnmap(REAL(f), deleteFlag); }
static int wcFetch(sqlite3_file *f, sqlite3_int64 off, int n, void **out) {
  return REAL(f)->pMethods->xFetch(REAL(f), off, n, out);
}
static int wcUnfetch(sqlite3_file *f, sqlite3_int64 off, void *page) {
  return REAL(f)->pMethods->xUnfetch(REAL(f), off, page);
}

static const sqlite3_io_methods wcMethods = {
    .iVersion = 3,
    .xClose = wcClose,
    .xRead = wcRead,
    .xWrite = wcWrite,
    .xTruncate = wcTruncate,
    .xSync = wcSync,
    .xFileSize = wcFileSize,
    .xLock = wcLock,
    .xUnlock = wcUnlock,
    .xCheckReservedLock = wcCheckReservedLock,
    .xFileControl = wcFileControl,
    .xSectorSize = wcSectorSize,
    .xDeviceCharacteristics = wcDeviceCharacteristics,
    .xShmMap = wcShmMap,
    .xShmLock = wcShmLock,
    .xShmBarrier = wcShmBarrier,
    .xShmUnmap = wcShmUnmap,
    .xFetch = wcFetch,
    .xUnfetch = wcUnfetch,
};

static int wcOpen(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags, int *outFlags) {
  WcFile *p = (WcFile *)f;
  memset(p, 0, sizeof(*p));
  p->real = (sqlite3_file *)&p[1];
  int rc = realVfs->xOpen(realVfs, name, p->real, flags, outFlags);
  if (rc != SQLITE_OK) {
    p->base.pMethods = NULL;
    return rc;
  }
  p->base.pMethods = &wcMethods;
  sqlite3_mutex_enter(mainsMutex);
  if ((flags & SQLITE_OPEN_MAIN_DB) && name) {
    p->name = name;
    p->nextMain = mains;
    mains = p;
  } else if ((flags & SQLITE_OPEN_WAL) && name) {
    p->isWal = 1;
    const char *database = sqlite3_filename_database(name);
    for (WcFile *m = mains; m; m = m->nextMain) {
      if (m->name == database) {
        m->partner = p;
        p->partner = m;
        break;
      }
    }
  }
  sqlite3_mutex_leave(mainsMutex);
  return rc;
}

static int wcDelete(sqlite3_vfs *v, const char *name, int sync) { return realVfs->xDelete(realVfs, name, sync); }
static int wcAccess(sqlite3_vfs *v, const char *name, int flags, int *out) {
  return realVfs->xAccess(realVfs, name, flags, out);
}
static int wcFullPathname(sqlite3_vfs *v, const char *name, int n, char *out) {
  return realVfs->xFullPathname(realVfs, name, n, out);
}
static void *wcDlOpen(sqlite3_vfs *v, const char *name) { return realVfs->xDlOpen(realVfs, name); }
static void wcDlError(sqlite3_vfs *v, int n, char *out) { realVfs->xDlError(realVfs, n, out); }
static void (*wcDlSym(sqlite3_vfs *v, void *lib, const char *sym))(void) { return realVfs->xDlSym(realVfs, lib, sym); }
static void wcDlClose(sqlite3_vfs *v, void *lib) { realVfs->xDlClose(realVfs, lib); }
static int wcRandomness(sqlite3_vfs *v, int n, char *out) { return realVfs->xRandomness(realVfs, n, out); }
static int wcSleep(sqlite3_vfs *v, int us) { return realVfs->xSleep(realVfs, us); }
static int wcCurrentTime(sqlite3_vfs *v, double *out) { return realVfs->xCurrentTime(realVfs, out); }
static int wcGetLastError(sqlite3_vfs *v, int n, char *out) { return realVfs->xGetLastError(realVfs, n, out); }
static int wcCurrentTimeInt64(sqlite3_vfs *v, sqlite3_int64 *out) {
  return realVfs->xCurrentTimeInt64(realVfs, out);
}

/* segql_wal_coalesce(): the frames held and the writes that carried them, as '{"frames":F,"writes":W}'. */
static void wcStats(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  sqlite3_result_text(ctx,
                      sqlite3_mprintf("{\"frames\":%lld,\"writes\":%lld}",
                                      __atomic_load_n(&framesHeld, __ATOMIC_RELAXED),
                                      __atomic_load_n(&bufferWrites, __ATOMIC_RELAXED)),
                      -1, sqlite3_free);
}

static int wcRegisterFunction(sqlite3 *db, char **err, const sqlite3_api_routines *api) {
  return sqlite3_create_function(db, "segql_wal_coalesce", 0, SQLITE_UTF8, NULL, wcStats, NULL, NULL);
}

#ifdef _WIN32
__declspec(dllexport)
#endif
int sqlite3_walcoalesce_init(sqlite3 *db, char **err, const sqlite3_api_routines *api) {
  SQLITE_EXTENSION_INIT2(api);
  if (!realVfs) {
    sqlite3_vfs *base = sqlite3_vfs_find(NULL);
    if (!base) return SQLITE_ERROR;
    mainsMutex = sqlite3_mutex_alloc(SQLITE_MUTEX_FAST);
    if (!mainsMutex) return SQLITE_NOMEM;
    realVfs = base;
    wcVfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(WcFile) + base->szOsFile,
        .mxPathname = base->mxPathname,
        .zName = "segql-wal",
        .pAppData = NULL,
        .xOpen = wcOpen,
        .xDelete = wcDelete,
        .xAccess = wcAccess,
        .xFullPathname = wcFullPathname,
        .xDlOpen = wcDlOpen,
        .xDlError = wcDlError,
        .xDlSym = wcDlSym,
        .xDlClose = wcDlClose,
        .xRandomness = wcRandomness,
        .xSleep = wcSleep,
        .xCurrentTime = wcCurrentTime,
        .xGetLastError = wcGetLastError,
        .xCurrentTimeInt64 = wcCurrentTimeInt64,
    };
    int rc = sqlite3_vfs_register(&wcVfs, 1);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_auto_extension((void (*)(void))wcRegisterFunction);
    if (rc != SQLITE_OK) return rc;
  }
  int rc = wcRegisterFunction(db, err, api);
  return rc == SQLITE_OK ? SQLITE_OK_LOAD_PERMANENTLY : rc;
}
