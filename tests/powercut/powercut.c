/*
 * powercut.c: an LD_PRELOAD shim that lets a test cut the power.
 *
 * SIGKILL keeps the kernel's page cache, so a process that never calls
 * fsync loses nothing when it is killed; a crash test cannot see a missing
 * fsync. This shim keeps, for every regular file under $POWERCUT_DIR, a
 * second copy holding only what was made durable: the file's "disk image"
 * ($POWERCUT_IMAGES/<st_dev>-<st_ino>). Writes go to the real file as usual
 * (the page cache plays the disk's volatile cache, so reads, sizes, locks
 * and mmap are the kernel's own and SQLite sees a normal file system); the
 * shim notes which byte ranges each write touched, and fsync/fdatasync
 * copies those ranges and the file's size into the image. After the process
 * is SIGKILLed, the test copies every image back over its file
 * (tests/src/powercut.rs, Powercut::cut): what was not synced is gone.
 *
 * This is the same model as keeping unsynced writes in the process's memory
 * and applying them at fsync, but nothing the process reads has to be faked,
 * and a write or sync call the shim misses makes data look lost (a test
 * failure), never durable. The one miss that would hide a loss, a file
 * opened by a call not intercepted here, leaves the file without an image,
 * and the cut refuses such a file.
 *
 * Simplifications:
 * - Creating, renaming and unlinking files are immediate and durable, and
 *   directory fsyncs are passed through. This is lenient: a real power cut
 *   can also undo a creation whose directory was not synced (SQLite syncs
 *   the directory after creating a WAL or journal; that is not checked
 *   here). Only file contents and sizes are cut.
 * - A file's image starts as a copy of the file when this process first
 *   opens it (after O_TRUNC, if given): what earlier processes left is
 *   taken as durable (they were cut already, or never lost power).
 * - Files ending in "-shm" (SQLite's mmap'ed WAL index) are not tracked:
 *   SQLite rebuilds the index from the WAL after a crash.
 * - A sync copies dirty ranges in order; killed in the middle, the image
 *   holds part of them, like a disk that lost power during an fsync.
 * - Intercepted: open/open64/openat/openat64, close, write, pwrite/pwrite64,
 *   ftruncate/ftruncate64, fsync, fdatasync, unlink/unlinkat. O_SYNC and
 *   O_DSYNC descriptors sync after every write. Not intercepted (data then
 *   looks lost): writev, mmap writes, dup'ed descriptors, sync_file_range.
 *
 * Test code: one global mutex, no attempt at speed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_FD 4096

/* A byte range written since the last sync: [off, end). */
struct range {
  off_t off, end;
};

/* One tracked file (inode). Kept after its last close: its unsynced writes
 * are still in the "cache", and a later fsync through a new descriptor
 * must make them durable, as the kernel's would. */
struct file {
  dev_t dev;
  ino_t ino;
  int src;   /* private read-only descriptor on the file */
  int image; /* its disk image */
  struct range *dirty;
  size_t ndirty, cap;
  off_t shrunk_to; /* smallest ftruncate length since the last sync, or -1 */
  char image_path[PATH_MAX];
  struct file *next;
};

struct slot {
  struct file *file;
  int sync_each_write; /* opened O_SYNC / O_DSYNC */
};

static struct slot slots[MAX_FD];
static struct file *files;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static char dir[PATH_MAX];    /* realpath of $POWERCUT_DIR, "" = inactive */
static char images[PATH_MAX]; /* $POWERCUT_IMAGES */
static int ignore_fsync;      /* $POWERCUT_IGNORE_FSYNC=1: a disk that lies */

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_unlinkat)(int, const char *, int);

static void die(const char *what) {
  fprintf(stderr, "powercut: %s: %s\n", what, strerror(errno));
  abort();
}

static void *next_symbol(const char *name) {
  void *f = dlsym(RTLD_NEXT, name);
  if (!f) {
    fprintf(stderr, "powercut: no %s\n", name);
    abort();
  }
  return f;
}

static void init(void) {
  /* off_t is 64 bits here (x86-64, aarch64), so the *64 entry points and
   * the plain ones are the same functions. */
  real_open = next_symbol("open64");
  real_openat = next_symbol("openat64");
  real_close = next_symbol("close");
  real_write = next_symbol("write");
  real_pwrite = next_symbol("pwrite64");
  real_ftruncate = next_symbol("ftruncate64");
  real_fsync = next_symbol("fsync");
  real_fdatasync = next_symbol("fdatasync");
  real_unlinkat = next_symbol("unlinkat");
  const char *d = getenv("POWERCUT_DIR"), *i = getenv("POWERCUT_IMAGES");
  const char *ign = getenv("POWERCUT_IGNORE_FSYNC");
  ignore_fsync = ign && strcmp(ign, "1") == 0;
  if (!d || !*d) return;
  if (!i || !*i || strlen(i) >= sizeof images - 64) {
    fprintf(stderr, "powercut: POWERCUT_DIR needs POWERCUT_IMAGES\n");
    abort();
  }
  if (!realpath(d, dir)) die("realpath POWERCUT_DIR");
  strcpy(images, i);
}

/* Copy [off, end) of the file into its image (clipped by the caller). */
static void copy_range(struct file *f, off_t off, off_t end) {
  char buf[65536];
  while (off < end) {
    size_t want = end - off < (off_t)sizeof buf ? (size_t)(end - off) : sizeof buf;
    ssize_t n = pread(f->src, buf, want, off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("read for image");
    if (n == 0) break; /* shrunk meanwhile: the size is set below */
    for (ssize_t done = 0; done < n;) {
      ssize_t w = real_pwrite(f->image, buf + done, n - done, off + done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) die("write image");
      done += w;
    }
    off += n;
  }
}

static off_t size_of(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) die("fstat");
  return st.st_size;
}

/* fsync: make the file's current content and size its disk image. */
static void make_durable(struct file *f) {
  if (ignore_fsync) return;
  off_t size = size_of(f->src);
  /* A shrink then a write past the new end leaves a hole of zeros. */
  if (f->shrunk_to >= 0 && real_ftruncate(f->image, f->shrunk_to < size ? f->shrunk_to : size) != 0)
    die("truncate image");
  for (size_t k = 0; k < f->ndirty; k++) {
    off_t end = f->dirty[k].end < size ? f->dirty[k].end : size;
    if (f->dirty[k].off < end) copy_range(f, f->dirty[k].off, end);
  }
  if (real_ftruncate(f->image, size) != 0) die("size image");
  f->ndirty = 0;
  f->shrunk_to = -1;
}

static void note_write(struct file *f, off_t off, off_t end) {
  if (f->ndirty > 0) {
    struct range *last = &f->dirty[f->ndirty - 1];
    if (off <= last->end && end >= last->off) { /* touches the last range */
      if (off < last->off) last->off = off;
      if (end > last->end) last->end = end;
      return;
    }
  }
  if (f->ndirty == f->cap) {
    f->cap = f->cap ? 2 * f->cap : 64;
    f->dirty = realloc(f->dirty, f->cap * sizeof *f->dirty);
    if (!f->dirty) die("realloc");
  }
  f->dirty[f->ndirty++] = (struct range){off, end};
}

static struct file *find_file(dev_t dev, ino_t ino) {
  for (struct file *f = files; f; f = f->next)
    if (f->dev == dev && f->ino == ino) return f;
  return NULL;
}

/* First open in this process: the image starts as a copy of the file. */
static struct file *new_file(int fd, const struct stat *st) {
  struct file *f = calloc(1, sizeof *f);
  char self[64];
  if (!f) die("calloc");
  f->dev = st->st_dev;
  f->ino = st->st_ino;
  f->shrunk_to = -1;
  snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
  f->src = real_open(self, O_RDONLY | O_CLOEXEC);
  if (f->src < 0) die("reopen tracked file");
  if (snprintf(f->image_path, sizeof f->image_path, "%.4000s/%llu-%llu", images, (unsigned long long)st->st_dev,
               (unsigned long long)st->st_ino) >= (int)sizeof f->image_path)
    die("image path too long");
  f->image = real_open(f->image_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (f->image < 0) die(f->image_path);
  off_t size = size_of(f->src);
  copy_range(f, 0, size);
  if (real_ftruncate(f->image, size) != 0) die("size image");
  f->next = files;
  files = f;
  return f;
}

static int under_dir(const char *path) {
  size_t n = strlen(dir), len = strlen(path);
  return strncmp(path, dir, n) == 0 && path[n] == '/' && !(len >= 4 && strcmp(path + len - 4, "-shm") == 0);
}

/* After a successful open: track fd if it is a regular file under dir. */
static int track(int fd, int flags) {
  char self[64], path[PATH_MAX];
  struct stat st;
  if (fd < 0 || !dir[0]) return fd;
  snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(self, path, sizeof path - 1);
  if (n < 0) return fd;
  path[n] = 0;
  if (!under_dir(path) || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return fd;
  if (fd >= MAX_FD) {
    fprintf(stderr, "powercut: descriptor %d too high to track\n", fd);
    abort();
  }
  pthread_mutex_lock(&lock);
  struct file *f = find_file(st.st_dev, st.st_ino);
  if (f && (flags & O_TRUNC)) f->shrunk_to = 0; /* an unsynced truncation */
  slots[fd].file = f ? f : new_file(fd, &st);
  slots[fd].sync_each_write = (flags & (O_SYNC | O_DSYNC)) != 0;
  pthread_mutex_unlock(&lock);
  return fd;
}

/* The tracked file behind fd, with the lock held; NULL (lock not held) if
 * fd is not tracked. A descriptor closed behind our back and reused for
 * another file (dup2, close_range) is noticed by its inode and forgotten. */
static struct file *locked(int fd) {
  if (fd < 0 || fd >= MAX_FD || !__atomic_load_n(&slots[fd].file, __ATOMIC_ACQUIRE)) return NULL;
  pthread_mutex_lock(&lock);
  struct file *f = slots[fd].file;
  struct stat st;
  if (f && (fstat(fd, &st) != 0 || st.st_dev != f->dev || st.st_ino != f->ino)) {
    slots[fd].file = NULL;
    f = NULL;
  }
  if (!f) pthread_mutex_unlock(&lock);
  return f;
}

static int mode_of(int flags, va_list ap) {
  return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  int mode = mode_of(flags, ap);
  va_end(ap);
  pthread_once(&once, init);
  return track(real_open(path, flags, mode), flags);
}

int open64(const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  int mode = mode_of(flags, ap);
  va_end(ap);
  pthread_once(&once, init);
  return track(real_open(path, flags, mode), flags);
}

int openat(int dirfd, const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  int mode = mode_of(flags, ap);
  va_end(ap);
  pthread_once(&once, init);
  return track(real_openat(dirfd, path, flags, mode), flags);
}

int openat64(int dirfd, const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  int mode = mode_of(flags, ap);
  va_end(ap);
  pthread_once(&once, init);
  return track(real_openat(dirfd, path, flags, mode), flags);
}

int close(int fd) {
  pthread_once(&once, init);
  if (fd >= 0 && fd < MAX_FD && __atomic_load_n(&slots[fd].file, __ATOMIC_ACQUIRE)) {
    pthread_mutex_lock(&lock);
    slots[fd].file = NULL; /* the file keeps its dirty ranges */
    pthread_mutex_unlock(&lock);
  }
  return real_close(fd);
}

/* The lock is held from before the write until its range is noted, so an
 * fsync on another thread sees the write whole or not at all. */
static void after_write(int fd, struct file *f, off_t off, ssize_t n) {
  if (n > 0) {
    note_write(f, off, off + n);
    if (slots[fd].sync_each_write) make_durable(f);
  }
  pthread_mutex_unlock(&lock);
}

ssize_t write(int fd, const void *buf, size_t count) {
  pthread_once(&once, init);
  struct file *f = locked(fd);
  if (!f) return real_write(fd, buf, count);
  ssize_t n = real_write(fd, buf, count);
  int saved = errno;
  off_t end = n > 0 ? lseek(fd, 0, SEEK_CUR) : 0; /* also right for O_APPEND */
  after_write(fd, f, end - n, n);
  errno = saved;
  return n;
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t off) {
  pthread_once(&once, init);
  struct file *f = locked(fd);
  if (!f) return real_pwrite(fd, buf, count, off);
  ssize_t n = real_pwrite(fd, buf, count, off);
  int saved = errno;
  after_write(fd, f, off, n);
  errno = saved;
  return n;
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t off) {
  return pwrite(fd, buf, count, off);
}

int ftruncate(int fd, off_t length) {
  pthread_once(&once, init);
  struct file *f = locked(fd);
  if (!f) return real_ftruncate(fd, length);
  int r = real_ftruncate(fd, length);
  int saved = errno;
  if (r == 0 && (f->shrunk_to < 0 || length < f->shrunk_to)) f->shrunk_to = length;
  pthread_mutex_unlock(&lock);
  errno = saved;
  return r;
}

int ftruncate64(int fd, off_t length) {
  return ftruncate(fd, length);
}

static int sync_with(int fd, int (*real)(int)) {
  pthread_once(&once, init);
  struct file *f = locked(fd);
  if (!f) return real(fd);
  int r = real(fd);
  int saved = errno;
  if (r == 0) make_durable(f);
  pthread_mutex_unlock(&lock);
  errno = saved;
  return r;
}

int fsync(int fd) {
  pthread_once(&once, init);
  return sync_with(fd, real_fsync);
}

int fdatasync(int fd) {
  pthread_once(&once, init);
  return sync_with(fd, real_fdatasync);
}

/* An unlinked file is gone for good; forget it and its image, so that a new
 * file that gets the same inode number starts clean. */
int unlinkat(int dirfd, const char *path, int flags) {
  pthread_once(&once, init);
  struct stat st;
  int known = dir[0] && !(flags & AT_REMOVEDIR) && fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
              S_ISREG(st.st_mode) && st.st_nlink == 1;
  int r = real_unlinkat(dirfd, path, flags);
  if (r != 0 || !known) return r;
  int saved = errno;
  pthread_mutex_lock(&lock);
  for (struct file **p = &files; *p; p = &(*p)->next) {
    struct file *f = *p;
    if (f->dev != st.st_dev || f->ino != st.st_ino) continue;
    for (int fd = 0; fd < MAX_FD; fd++)
      if (slots[fd].file == f) slots[fd].file = NULL;
    real_close(f->src);
    real_close(f->image);
    real_unlinkat(AT_FDCWD, f->image_path, 0);
    *p = f->next;
    free(f->dirty);
    free(f);
    break;
  }
  pthread_mutex_unlock(&lock);
  errno = saved;
  return r;
}

int unlink(const char *path) {
  return unlinkat(AT_FDCWD, path, 0);
}
