/* multicast.core._fastio: the batched datagram path in C (recvmmsg, sendmmsg) for Linux.
 *
 * The same work as the ctypes path of batch.py, without its per-call and per-datagram Python:
 * Receiver.receive() reads up to `slots` datagrams per recvmmsg into buffers allocated once,
 * decodes source, destination group, interface, TTL or hop limit, truncation and the kernel's
 * drop count in C, and returns ready Datagram objects (the class batch.py hands configure()).
 * send() sends the payloads of any iterable to one destination with sendmmsg, straight from
 * their buffers; send_each() sends answers, each to its own address, the same way (both in
 * _fastio_send.c). The GIL is released around every call that waits, reads or writes (poll,
 * recvmmsg, sendmmsg) and around the parsing of the control data received, which closes the
 * descriptors a peer passed; it is held only to map or unmap a Receiver's buffers (once each)
 * and to read the clock.
 *
 * Ancillary data is hostile input: a record is read only if its length fits the buffer and
 * holds the data its kind needs; unknown records are skipped; a bad length ends the walk.
 */
#include "_fastio.h"

#include <structmember.h>

#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40
#endif

#define NAME_SPACE 32 /* a sockaddr_in6 (28 bytes), kept 8-aligned */
#define CONTROL_SPACE                                                                  \
    (CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(int)) +                \
     CMSG_SPACE(sizeof(int)))
#define CACHE_SIZE 64 /* decoded sources and groups remembered, by their raw bytes */
#define MAX_SLOTS 1024
#define MAX_SIZE (1 << 24) /* bytes per slot: mapped, so only what datagrams reach is used */

/* --- the Datagram class: made without its __init__, its slots filled in directly ---------- */

enum { PAYLOAD, SOURCE, GROUP, INTERFACE, TTL, TRUNCATED, SIZE, DROPS, FIELDS };
static const char *const field_names[FIELDS] = {
    "payload", "source", "group", "interface", "ttl", "truncated", "size", "drops"};
static PyTypeObject *datagram_type;
static Py_ssize_t field_offsets[FIELDS];
PyObject *fastio_size_check;

static PyObject *configure(PyObject *module, PyObject *args) {
    PyObject *cls, *check;
    Py_ssize_t offsets[FIELDS];
    (void)module;
    if (!PyArg_ParseTuple(args, "O!O:configure", &PyType_Type, &cls, &check))
        return NULL;
    for (int index = 0; index < FIELDS; index++) {
        PyObject *found = PyObject_GetAttrString(cls, field_names[index]);
        int usable = found != NULL && Py_IS_TYPE(found, &PyMemberDescr_Type) &&
                     ((PyDescrObject *)found)->d_type == (PyTypeObject *)cls;
        PyMemberDef *member = usable ? ((PyMemberDescrObject *)found)->d_member : NULL;
        Py_XDECREF(found);
        PyErr_Clear();
        if (member == NULL || member->type != T_OBJECT_EX || (member->flags & READONLY))
            return PyErr_Format(PyExc_TypeError, "%R.%s is not a writable slot", cls,
                                field_names[index]);
        offsets[index] = member->offset;
    }
    memcpy(field_offsets, offsets, sizeof offsets);
    Py_XSETREF(datagram_type, (PyTypeObject *)Py_NewRef(cls));
    Py_XSETREF(fastio_size_check, Py_NewRef(check));
    Py_RETURN_NONE;
}

/* A Datagram holding `values` (references stolen, even on failure). */
static PyObject *new_datagram(PyObject *values[FIELDS]) {
    PyObject *datagram = datagram_type->tp_alloc(datagram_type, 0);
    for (int index = 0; index < FIELDS; index++) {
        if (datagram == NULL)
            Py_DECREF(values[index]);
        else
            *(PyObject **)((char *)datagram + field_offsets[index]) = values[index];
    }
    return datagram;
}

/* --- ancillary data ------------------------------------------------------------------------ */

typedef struct {
    int family; /* of the destination group; 0: no packet-info record */
    unsigned char group[16];
    int has_interface, interface;
    int has_ttl, ttl;
    unsigned int drops;
} Metadata;

/* A packet-info record: the destination group and the arrival interface. */
static void packet_info(Metadata *meta, int family, const void *group, size_t size,
                        int interface) {
    meta->family = family;
    memcpy(meta->group, group, size);
    meta->has_interface = 1;
    meta->interface = interface;
}

/* What the control records of one datagram say (the rules of datagram.parse_ancillary). With
 * `close_passed`, the descriptors of an SCM_RIGHTS record (only an AF_UNIX peer sends one)
 * are closed: a receiver of datagrams takes none, and keeps nothing a hostile peer pushed. */
static void parse_control(const unsigned char *control, size_t length, int close_passed,
                          Metadata *meta) {
    const size_t header = CMSG_LEN(0);
    size_t offset = 0;
    memset(meta, 0, sizeof *meta);
    while (length - offset >= sizeof(struct cmsghdr)) {
        struct cmsghdr record;
        memcpy(&record, control + offset, sizeof record); /* the buffer may be unaligned */
        if (record.cmsg_len < header || record.cmsg_len > length - offset)
            break;
        const unsigned char *data = control + offset + header;
        size_t size = record.cmsg_len - header;
        if (record.cmsg_level == IPPROTO_IP && record.cmsg_type == IP_PKTINFO) {
            struct in_pktinfo v4;
            if (size >= sizeof v4 && memcpy(&v4, data, sizeof v4))
                packet_info(meta, AF_INET, &v4.ipi_addr, sizeof v4.ipi_addr, v4.ipi_ifindex);
        } else if (record.cmsg_level == IPPROTO_IPV6 && record.cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo v6;
            if (size >= sizeof v6 && memcpy(&v6, data, sizeof v6))
                packet_info(meta, AF_INET6, &v6.ipi6_addr, sizeof v6.ipi6_addr,
                            (int)v6.ipi6_ifindex);
        } else if ((record.cmsg_level == IPPROTO_IP && record.cmsg_type == IP_TTL) ||
                   (record.cmsg_level == IPPROTO_IPV6 && record.cmsg_type == IPV6_HOPLIMIT)) {
            if (size >= sizeof(int)) {
                memcpy(&meta->ttl, data, sizeof(int));
                meta->has_ttl = 1;
            }
        } else if (record.cmsg_level == SOL_SOCKET && record.cmsg_type == SO_RXQ_OVFL) {
            if (size >= sizeof(unsigned int))
                memcpy(&meta->drops, data, sizeof(unsigned int));
        } else if (record.cmsg_level == SOL_SOCKET && record.cmsg_type == SCM_RIGHTS) {
            for (size_t at = 0; close_passed && at + sizeof(int) <= size; at += sizeof(int)) {
                int passed;
                memcpy(&passed, data + at, sizeof passed);
                close(passed);
            }
        }
        offset += CMSG_ALIGN(record.cmsg_len);
        if (offset > length)
            break;
    }
}

/* --- decoded addresses, remembered by their raw bytes -------------------------------------- */

typedef struct {
    unsigned char key[NAME_SPACE];
    size_t length;
    PyObject *value;
} CacheEntry;

static PyObject *text_address(int family, const void *packed) {
    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(family, packed, text, sizeof text) == NULL)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyUnicode_FromString(text);
}

/* A source (host, port) from a sockaddr; ("", 0) for anything but IPv4 and IPv6. */
static PyObject *decode_source(const unsigned char *name, size_t length) {
    struct sockaddr_in6 address; /* room for a sockaddr_in too */
    PyObject *host;
    memset(&address, 0, sizeof address);
    memcpy(&address, name, length < sizeof address ? length : sizeof address);
    if (address.sin6_family == AF_INET && length >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in v4;
        memcpy(&v4, &address, sizeof v4);
        host = text_address(AF_INET, &v4.sin_addr);
    } else if (address.sin6_family == AF_INET6 && length >= sizeof address) {
        host = text_address(AF_INET6, &address.sin6_addr);
    } else {
        return Py_BuildValue("(si)", "", 0);
    }
    return host == NULL ? NULL : Py_BuildValue("(Ni)", host, (int)ntohs(address.sin6_port));
}

static PyObject *decode_group(const unsigned char *key, size_t length) {
    return text_address(length == 4 ? AF_INET : AF_INET6, key);
}

/* The decoded value of `key` (a new reference), decoded and remembered on a miss. */
static PyObject *remembered(CacheEntry *cache, const unsigned char *key, size_t length,
                            PyObject *(*decode)(const unsigned char *, size_t)) {
    uint32_t hash = 2166136261u; /* FNV-1a */
    for (size_t index = 0; index < length; index++)
        hash = (hash ^ key[index]) * 16777619u;
    CacheEntry *entry = &cache[hash % CACHE_SIZE];
    if (entry->value == NULL || entry->length != length || memcmp(entry->key, key, length)) {
        PyObject *value = decode(key, length);
        if (value == NULL)
            return NULL;
        memcpy(entry->key, key, length);
        entry->length = length;
        Py_XSETREF(entry->value, value);
    }
    return Py_NewRef(entry->value);
}

/* --- Receiver ------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    Py_ssize_t size;         /* bytes per payload slot */
    unsigned int slots;      /* datagrams per recvmmsg */
    unsigned char *payloads; /* slots * size bytes, mapped: pages are committed when written */
    size_t mapped;
    unsigned char *names;    /* slots * NAME_SPACE */
    unsigned char *controls; /* slots * CONTROL_SPACE */
    struct iovec *iovecs;
    struct mmsghdr *messages;
    Metadata *metadata; /* slots: what the control data of each says, parsed on arrival */
    unsigned int written; /* slots the kernel wrote into since their headers were set */
    char busy; /* a thread reads into the buffers (and may have released the GIL) */
    CacheEntry sources[CACHE_SIZE];
    CacheEntry groups[CACHE_SIZE];
} Receiver;

/* Unmaps and frees the buffers: the state of a Receiver never initialized. */
static void release_buffers(Receiver *self) {
    if (self->payloads != NULL)
        munmap(self->payloads, self->mapped);
    PyMem_Free(self->names);
    PyMem_Free(self->controls);
    PyMem_Free(self->iovecs);
    PyMem_Free(self->messages);
    PyMem_Free(self->metadata);
    self->payloads = self->names = self->controls = NULL;
    self->iovecs = NULL;
    self->messages = NULL;
    self->metadata = NULL;
    self->mapped = 0;
    self->size = 0;
    self->slots = self->written = 0;
}

static void Receiver_dealloc(Receiver *self) {
    for (int index = 0; index < CACHE_SIZE; index++) {
        Py_CLEAR(self->sources[index].value);
        Py_CLEAR(self->groups[index].value);
    }
    release_buffers(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Receiver_init(Receiver *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"size", "slots", NULL};
    Py_ssize_t size;
    int slots = 64;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "n|i:Receiver", keywords, &size, &slots))
        return -1;
    if (size < 0 || size > MAX_SIZE || slots <= 0 || slots > MAX_SLOTS) {
        PyErr_Format(PyExc_ValueError, "need a size of 0-%d and 1-%d slots, not %zd and %d",
                     MAX_SIZE, MAX_SLOTS, size, slots);
        return -1;
    }
    if (self->payloads != NULL) { /* a failed __init__ left none: it may be called again */
        PyErr_SetString(PyExc_RuntimeError, "a Receiver is initialized once");
        return -1;
    }
    self->size = size;
    self->slots = (unsigned int)slots;
    self->mapped = (size_t)(size > 0 ? size : 1) * self->slots;
    void *mapped = mmap(NULL, self->mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                        -1, 0);
    if (mapped == MAP_FAILED) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    self->payloads = mapped;
    self->names = PyMem_Calloc(self->slots, NAME_SPACE);
    self->controls = PyMem_Calloc(self->slots, CONTROL_SPACE);
    self->iovecs = PyMem_Calloc(self->slots, sizeof(struct iovec));
    self->messages = PyMem_Calloc(self->slots, sizeof(struct mmsghdr));
    self->metadata = PyMem_Calloc(self->slots, sizeof(Metadata));
    if (!self->names || !self->controls || !self->iovecs || !self->messages || !self->metadata) {
        release_buffers(self);
        PyErr_NoMemory();
        return -1;
    }
    for (unsigned int index = 0; index < self->slots; index++) {
        self->iovecs[index].iov_base = self->payloads + (size_t)size * index;
        self->iovecs[index].iov_len = (size_t)size;
        self->messages[index].msg_hdr.msg_iov = &self->iovecs[index];
        self->messages[index].msg_hdr.msg_iovlen = 1;
        self->messages[index].msg_hdr.msg_name = self->names + (size_t)NAME_SPACE * index;
        self->messages[index].msg_hdr.msg_control = self->controls + CONTROL_SPACE * index;
    }
    self->written = self->slots;
    return 0;
}

/* Field `field` of the Datagram of slot `index` (a new reference; NULL with an exception set
 * on failure). */
static PyObject *field_of(Receiver *self, unsigned int index, int field) {
    const struct mmsghdr *message = &self->messages[index];
    const Metadata *meta = &self->metadata[index];
    size_t length = message->msg_len, named = message->msg_hdr.msg_namelen;
    switch (field) {
    case PAYLOAD:
        return PyBytes_FromStringAndSize(
            (const char *)self->payloads + (size_t)self->size * index,
            (Py_ssize_t)(length < (size_t)self->size ? length : (size_t)self->size));
    case SOURCE:
        return remembered(self->sources, self->names + (size_t)NAME_SPACE * index,
                          named < NAME_SPACE ? named : NAME_SPACE, decode_source);
    case GROUP:
        return meta->family ? remembered(self->groups, meta->group,
                                         meta->family == AF_INET ? 4 : 16, decode_group)
                            : Py_NewRef(Py_None);
    case INTERFACE:
        return meta->has_interface ? PyLong_FromLong(meta->interface) : Py_NewRef(Py_None);
    case TTL:
        return meta->has_ttl ? PyLong_FromLong(meta->ttl) : Py_NewRef(Py_None);
    case TRUNCATED:
        return PyBool_FromLong(message->msg_hdr.msg_flags & MSG_TRUNC);
    case SIZE:
        return PyLong_FromSize_t(length);
    default:
        return PyLong_FromUnsignedLong(meta->drops);
    }
}

/* The Datagram of slot `index`, just filled by recvmmsg: its fields made one by one, the
 * first failure ending it. */
static PyObject *collect(Receiver *self, unsigned int index) {
    PyObject *values[FIELDS];
    for (int field = 0; field < FIELDS; field++) {
        values[field] = field_of(self, index, field);
        if (values[field] == NULL) {
            while (field-- > 0)
                Py_DECREF(values[field]);
            return NULL;
        }
    }
    return new_datagram(values);
}

static double monotonic(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

/* recvmmsg into the first `wanted` slots with the GIL released; -1 with `failure` set on
 * failure. The control data of each slot filled is parsed there too, so the descriptors a
 * peer passed are closed whatever happens next. With `spin` seconds it first polls without
 * blocking (MSG_DONTWAIT) until one arrives or the time is up; then, with a `deadline`
 * (monotonic seconds; < 0: none), it waits until then in poll() and reads without blocking,
 * else it makes the call `flags` say. */
static int read_slots(Receiver *self, int fd, unsigned int wanted, int flags, double spin,
                      double deadline, int *failure) {
    int count = -1, quiet = (flags & ~MSG_WAITFORONE) | MSG_DONTWAIT;
    for (unsigned int index = 0; index < self->written; index++) { /* what the kernel wrote */
        struct msghdr *header = &self->messages[index].msg_hdr;
        header->msg_namelen = NAME_SPACE;
        header->msg_controllen = CONTROL_SPACE;
        header->msg_flags = 0;
        self->messages[index].msg_len = 0;
    }
    self->written = wanted; /* until the call says how many it filled */
    Py_BEGIN_ALLOW_THREADS
    errno = EAGAIN;
    if (spin > 0) {
        double until = monotonic() + spin;
        until = deadline >= 0 && deadline < until ? deadline : until;
        for (;;) {
            count = recvmmsg(fd, self->messages, wanted, quiet, NULL);
            if (count >= 0 || errno != EAGAIN || monotonic() >= until)
                break;
            sched_yield(); /* a busy CPU goes first to whoever else is ready to run */
        }
    }
    if (count < 0 && errno == EAGAIN && deadline >= 0) {
        struct pollfd wake = {.fd = fd, .events = POLLIN};
        double left = (deadline - monotonic()) * 1e3;
        int ready = poll(&wake, 1, left <= 0 ? 0 : left >= INT_MAX ? INT_MAX : (int)left + 1);
        if (ready > 0)
            count = recvmmsg(fd, self->messages, wanted, quiet, NULL);
        else if (ready == 0)
            errno = EAGAIN;
    } else if (count < 0 && errno == EAGAIN) {
        count = recvmmsg(fd, self->messages, wanted, flags, NULL);
    }
    *failure = errno;
    for (int index = 0; index < count; index++) {
        size_t controlled = self->messages[index].msg_hdr.msg_controllen;
        parse_control(self->controls + CONTROL_SPACE * (size_t)index,
                      controlled < CONTROL_SPACE ? controlled : CONTROL_SPACE, 1,
                      &self->metadata[index]);
    }
    Py_END_ALLOW_THREADS
    self->written = count > 0 ? (unsigned int)count : 0;
    return count;
}

int fastio_as_int(PyObject *number, int *value) {
    long found = PyLong_AsLong(number);
    if (found == -1 && PyErr_Occurred())
        return -1;
    if (found < INT_MIN || found > INT_MAX) {
        PyErr_Format(PyExc_OverflowError, "%ld does not fit a C int", found);
        return -1;
    }
    *value = (int)found;
    return 0;
}

static PyObject *Receiver_receive(Receiver *self, PyObject *const *args, Py_ssize_t nargs) {
    int fd, failure, wait = 0;
    double spin = 0.0, deadline = -1.0;
    Py_ssize_t limit;
    if (nargs < 2 || nargs > 5)
        return PyErr_Format(PyExc_TypeError, "receive() takes 2 to 5 arguments, not %zd", nargs);
    if (fastio_as_int(args[0], &fd) < 0 ||
        ((limit = PyLong_AsSsize_t(args[1])) == -1 && PyErr_Occurred()))
        return NULL;
    if ((nargs > 2 && (wait = PyObject_IsTrue(args[2])) < 0) ||
        (nargs > 3 && (spin = PyFloat_AsDouble(args[3])) == -1.0 && PyErr_Occurred()))
        return NULL;
    if (nargs > 4 && args[4] != Py_None) {
        double timeout = PyFloat_AsDouble(args[4]);
        if (timeout == -1.0 && PyErr_Occurred())
            return NULL;
        deadline = monotonic() + (timeout > 0 ? timeout : 0.0);
    }
    if (datagram_type == NULL)
        return PyErr_Format(PyExc_RuntimeError, "_fastio.configure() was not called");
    if (self->messages == NULL)
        return PyErr_Format(PyExc_RuntimeError, "the Receiver was not initialized");
    if (fd < 0) /* closed: poll() would not say so */
        return PyErr_SetFromErrno((errno = EBADF, PyExc_OSError));
    if (self->busy) { /* another thread reads into the buffers: this call gets its own */
        PyObject *own = PyObject_CallFunction((PyObject *)Py_TYPE(self), "nI", self->size,
                                              self->slots);
        PyObject *got = own == NULL ? NULL : Receiver_receive((Receiver *)own, args, nargs);
        Py_XDECREF(own);
        return got;
    }
    self->busy = 1; /* before anything that can run Python code (the GC) and so switch threads */
    PyObject *ready = PyList_New(0);
    if (ready == NULL) {
        self->busy = 0;
        return NULL;
    }
    int flags = (wait ? MSG_WAITFORONE : MSG_DONTWAIT) | MSG_TRUNC | MSG_CMSG_CLOEXEC;
    while (PyList_GET_SIZE(ready) < limit) {
        Py_ssize_t left = limit - PyList_GET_SIZE(ready);
        unsigned int wanted = left < (Py_ssize_t)self->slots ? (unsigned int)left : self->slots;
        int count = read_slots(self, fd, wanted, flags, spin, deadline, &failure);
        if (count < 0 && failure == EINTR) { /* run the handlers; one that raises ends it */
            if (PyErr_CheckSignals() < 0)
                goto fail;
            continue;
        }
        if (count < 0 && (failure == EAGAIN || failure == EWOULDBLOCK))
            break;
        if (count < 0) {
            errno = failure;
            PyErr_SetFromErrno(PyExc_OSError);
            goto fail;
        }
        for (unsigned int index = 0; index < (unsigned int)count; index++) {
            PyObject *datagram = collect(self, index);
            if (datagram == NULL || PyList_Append(ready, datagram) < 0) {
                Py_XDECREF(datagram);
                goto fail;
            }
            Py_DECREF(datagram);
        }
        if ((unsigned int)count < wanted) /* the queue ran dry */
            break;
        flags = MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC;
        spin = 0.0;
        deadline = -1.0;
    }
    self->busy = 0;
    return ready;
fail:
    self->busy = 0;
    Py_DECREF(ready);
    return NULL;
}

static PyMethodDef Receiver_methods[] = {
    {"receive", (PyCFunction)(void (*)(void))Receiver_receive, METH_FASTCALL,
     "receive(fd, limit, wait=False, spin=0.0, timeout=None) -> list of Datagram\n\n"
     "Every datagram queued on the socket fd (at most limit), without blocking. With wait, a\n"
     "blocking socket first waits for one in the same call (MSG_WAITFORONE); with a timeout\n"
     "(seconds), poll() waits for one that long. With spin, it first polls that many seconds\n"
     "without blocking."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Receiver_members[] = {
    {"size", T_PYSSIZET, offsetof(Receiver, size), READONLY, "bytes kept per datagram"},
    {"slots", T_UINT, offsetof(Receiver, slots), READONLY, "datagrams per recvmmsg"},
    {"busy", T_BOOL, offsetof(Receiver, busy), READONLY, "a thread reads into the buffers"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ReceiverType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "multicast.core._fastio.Receiver",
    .tp_doc = "Receiver(size, slots=64): reads up to slots datagrams of up to size bytes per\n"
              "recvmmsg, into buffers of its own (a call made while another thread is in\n"
              "one gets buffers for itself).",
    .tp_basicsize = sizeof(Receiver),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Receiver_init,
    .tp_dealloc = (destructor)Receiver_dealloc,
    .tp_methods = Receiver_methods,
    .tp_members = Receiver_members,
};

/* --- the test hook ------------------------------------------------------------------------- */

static PyObject *parse_control_bytes(PyObject *module, PyObject *args) {
    Py_buffer control;
    Metadata meta;
    (void)module;
    if (!PyArg_ParseTuple(args, "y*:parse_control", &control))
        return NULL;
    parse_control(control.buf, (size_t)control.len, 0, &meta);
    PyBuffer_Release(&control);
    PyObject *group = meta.family ? decode_group(meta.group, meta.family == AF_INET ? 4 : 16)
                                  : Py_NewRef(Py_None);
    if (group == NULL)
        return NULL;
    return Py_BuildValue("(NNNk)", group,
                         meta.has_interface ? PyLong_FromLong(meta.interface) : Py_NewRef(Py_None),
                         meta.has_ttl ? PyLong_FromLong(meta.ttl) : Py_NewRef(Py_None),
                         (unsigned long)meta.drops);
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(datagram_class, check_payload_size): the class receive() makes (a slots\n"
     "dataclass; its fields are filled in directly) and the size check send() raises with."},
    {"send", fastio_send, METH_VARARGS,
     "send(fd, family, payloads, name, limit) -> int\n\n"
     "Send each payload to the sockaddr `name` with sendmmsg; how many were sent. Stops early\n"
     "when the socket would block; a payload over `limit` bytes, or an error of the\n"
     "iterable, is raised after the payloads before it were sent."},
    {"send_each", fastio_send_each, METH_VARARGS,
     "send_each(fd, family, pairs, limit) -> list of (index, errno)\n\n"
     "Send each payload of a list of (payload, (host, port[, flow, scope])) pairs to its\n"
     "address with sendmmsg; those the kernel refused (or that would block) are listed with\n"
     "their errno, the others were sent. A payload over `limit` bytes raises before any is."},
    {"parse_control", parse_control_bytes, METH_VARARGS,
     "parse_control(control) -> (group, interface, ttl, drops): what a control buffer says,\n"
     "exactly as receive() reads it (a test hook)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fastio_module = {
    PyModuleDef_HEAD_INIT, "multicast.core._fastio",
    "The batched datagram path of multicast.core in C (see multicast.core.batch).", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastio(void) {
    if (PyType_Ready(&ReceiverType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&fastio_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "Receiver", (PyObject *)&ReceiverType) < 0 ||
        PyModule_AddIntConstant(module, "CONTROL_SPACE", (long)CONTROL_SPACE) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
