/* multicast.core._fastio: the batched datagram path in C (recvmmsg, sendmmsg) for Linux.
 *
 * The same work as the ctypes path of batch.py, without its per-call and per-datagram Python:
 * Receiver.receive() reads up to `slots` datagrams per recvmmsg into buffers allocated once,
 * decodes source, destination group, interface, TTL or hop limit, truncation and the kernel's
 * drop count in C, and returns ready Datagram objects (the class batch.py hands configure()).
 * send() sends the payloads of any iterable with sendmmsg, up to 64 per call, straight from
 * their buffers. The GIL is released around every system call.
 *
 * Ancillary data is hostile input: a record is read only if its length fits the buffer and
 * holds the data its kind needs; unknown records are skipped; a bad length ends the walk.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/mman.h>
#include <sched.h>
#include <sys/socket.h>
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
#define SEND_SLOTS 64 /* datagrams per sendmmsg */
#define MAX_SLOTS 1024
#define MAX_SIZE (1 << 24) /* bytes per slot: mapped, so only what datagrams reach is used */

/* --- the Datagram class: made without its __init__, its slots filled in directly ---------- */

enum { PAYLOAD, SOURCE, GROUP, INTERFACE, TTL, TRUNCATED, SIZE, DROPS, FIELDS };
static const char *const field_names[FIELDS] = {
    "payload", "source", "group", "interface", "ttl", "truncated", "size", "drops"};
static PyTypeObject *datagram_type;
static Py_ssize_t field_offsets[FIELDS];
static PyObject *size_check; /* check_payload_size(family, size): raises for a size too big */

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
        if (member == NULL || member->type != T_OBJECT_EX || (member->flags & READONLY)) {
            PyErr_Format(PyExc_TypeError, "%R.%s is not a writable slot", cls,
                         field_names[index]);
            return NULL;
        }
        offsets[index] = member->offset;
    }
    memcpy(field_offsets, offsets, sizeof offsets);
    Py_INCREF(cls);
    Py_XSETREF(datagram_type, (PyTypeObject *)cls);
    Py_INCREF(check);
    Py_XSETREF(size_check, check);
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

static size_t cache_slot(const unsigned char *key, size_t length) {
    uint32_t hash = 2166136261u; /* FNV-1a */
    for (size_t index = 0; index < length; index++)
        hash = (hash ^ key[index]) * 16777619u;
    return hash % CACHE_SIZE;
}

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

/* The decoded value of `key` (a new reference), decoded and remembered on a miss. */
static PyObject *remembered(CacheEntry *cache, const unsigned char *key, size_t length,
                            PyObject *(*decode)(const unsigned char *, size_t)) {
    CacheEntry *entry = &cache[cache_slot(key, length)];
    if (entry->value == NULL || entry->length != length || memcmp(entry->key, key, length)) {
        PyObject *value = decode(key, length);
        if (value == NULL)
            return NULL;
        memcpy(entry->key, key, length);
        entry->length = length;
        Py_XSETREF(entry->value, value);
    }
    Py_INCREF(entry->value);
    return entry->value;
}

static PyObject *decode_group(const unsigned char *key, size_t length) {
    return text_address(length == 4 ? AF_INET : AF_INET6, key);
}

/* --- Receiver ------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    Py_ssize_t size;       /* bytes per payload slot */
    unsigned int slots;    /* datagrams per recvmmsg */
    unsigned char *payloads; /* slots * size bytes, mapped: pages are committed when written */
    size_t mapped;
    unsigned char *names;    /* slots * NAME_SPACE */
    unsigned char *controls; /* slots * CONTROL_SPACE */
    struct iovec *iovecs;
    struct mmsghdr *messages;
    CacheEntry sources[CACHE_SIZE];
    CacheEntry groups[CACHE_SIZE];
} Receiver;

static void Receiver_dealloc(Receiver *self) {
    for (int index = 0; index < CACHE_SIZE; index++) {
        Py_CLEAR(self->sources[index].value);
        Py_CLEAR(self->groups[index].value);
    }
    if (self->payloads != NULL)
        munmap(self->payloads, self->mapped);
    PyMem_Free(self->names);
    PyMem_Free(self->controls);
    PyMem_Free(self->iovecs);
    PyMem_Free(self->messages);
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
    if (self->messages != NULL) {
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
    if (!self->names || !self->controls || !self->iovecs || !self->messages) {
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
    return 0;
}

/* The Datagram of slot `index`, just filled by recvmmsg. */
static PyObject *collect(Receiver *self, unsigned int index) {
    struct mmsghdr *message = &self->messages[index];
    size_t length = message->msg_len;
    size_t kept = length < (size_t)self->size ? length : (size_t)self->size;
    size_t named = message->msg_hdr.msg_namelen;
    size_t controlled = message->msg_hdr.msg_controllen;
    Metadata meta;
    if (controlled > CONTROL_SPACE)
        controlled = CONTROL_SPACE;
    parse_control(self->controls + CONTROL_SPACE * index, controlled, 1, &meta);
    PyObject *values[FIELDS];
    values[PAYLOAD] = PyBytes_FromStringAndSize(
        (const char *)self->payloads + (size_t)self->size * index, (Py_ssize_t)kept);
    values[SOURCE] = remembered(self->sources, self->names + (size_t)NAME_SPACE * index,
                                named < NAME_SPACE ? named : NAME_SPACE, decode_source);
    values[GROUP] = meta.family ? remembered(self->groups, meta.group,
                                             meta.family == AF_INET ? 4 : 16, decode_group)
                                : Py_NewRef(Py_None);
    values[INTERFACE] = meta.has_interface ? PyLong_FromLong(meta.interface) : Py_NewRef(Py_None);
    values[TTL] = meta.has_ttl ? PyLong_FromLong(meta.ttl) : Py_NewRef(Py_None);
    values[TRUNCATED] = PyBool_FromLong(message->msg_hdr.msg_flags & MSG_TRUNC);
    values[SIZE] = PyLong_FromSize_t(length);
    values[DROPS] = PyLong_FromUnsignedLong(meta.drops);
    for (int field = 0; field < FIELDS; field++) {
        if (values[field] == NULL) {
            for (int other = 0; other < FIELDS; other++)
                Py_XDECREF(values[other]);
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

/* recvmmsg into the first `wanted` slots with the GIL released; -1 with errno set on failure.
 * With `spin` seconds it first polls without blocking (MSG_DONTWAIT) until one arrives or the
 * time is up, then makes its own call as given by `flags`. */
static int read_slots(Receiver *self, int fd, unsigned int wanted, int flags, double spin,
                      int *failure) {
    int count;
    for (unsigned int index = 0; index < wanted; index++) {
        struct msghdr *header = &self->messages[index].msg_hdr;
        header->msg_namelen = NAME_SPACE;
        header->msg_controllen = CONTROL_SPACE;
        header->msg_flags = 0;
        self->messages[index].msg_len = 0;
    }
    Py_BEGIN_ALLOW_THREADS
    count = -1;
    errno = EAGAIN;
    if (spin > 0) {
        double deadline = monotonic() + spin;
        for (;;) {
            count = recvmmsg(fd, self->messages, wanted, (flags & ~MSG_WAITFORONE) | MSG_DONTWAIT,
                             NULL);
            if (count >= 0 || errno != EAGAIN || monotonic() >= deadline)
                break;
            sched_yield(); /* a busy CPU goes first to whoever else is ready to run */
        }
    }
    if (count < 0 && errno == EAGAIN)
        count = recvmmsg(fd, self->messages, wanted, flags, NULL);
    *failure = errno;
    Py_END_ALLOW_THREADS
    return count;
}

/* A socket's fileno() (-1 once closed: the call then fails with EBADF), or a descriptor;
 * -2 with an exception set. */
static int descriptor(PyObject *sock) {
    PyObject *number = PyLong_Check(sock) ? Py_NewRef(sock) : PyObject_CallMethod(sock, "fileno", NULL);
    if (number == NULL)
        return -2;
    long value = PyLong_AsLong(number);
    Py_DECREF(number);
    if (value == -1 && PyErr_Occurred())
        return -2;
    return value < 0 || value > INT_MAX ? -1 : (int)value;
}

static PyObject *Receiver_receive(Receiver *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"sock", "limit", "wait", "spin", NULL};
    PyObject *sock;
    int wait = 0, failure;
    Py_ssize_t limit;
    double spin = 0.0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "On|$pd:receive", keywords, &sock, &limit,
                                     &wait, &spin))
        return NULL;
    int fd = descriptor(sock);
    if (fd == -2)
        return NULL;
    if (datagram_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_fastio.configure() was not called");
        return NULL;
    }
    PyObject *ready = PyList_New(0);
    if (ready == NULL)
        return NULL;
    int flags = (wait ? MSG_WAITFORONE : MSG_DONTWAIT) | MSG_TRUNC | MSG_CMSG_CLOEXEC;
    while (PyList_GET_SIZE(ready) < limit) {
        Py_ssize_t left = limit - PyList_GET_SIZE(ready);
        unsigned int wanted = left < (Py_ssize_t)self->slots ? (unsigned int)left : self->slots;
        int count = read_slots(self, fd, wanted, flags, spin, &failure);
        if (count < 0) {
            if (failure == EAGAIN || failure == EWOULDBLOCK)
                break;
            if (failure == EINTR) { /* run the handlers; one that raises ends the wait */
                if (PyErr_CheckSignals() < 0)
                    goto fail;
                continue;
            }
            errno = failure;
            PyErr_SetFromErrno(PyExc_OSError);
            goto fail;
        }
        for (unsigned int index = 0; index < (unsigned int)count; index++) {
            PyObject *datagram = collect(self, index);
            if (datagram == NULL)
                goto fail;
            int appended = PyList_Append(ready, datagram);
            Py_DECREF(datagram);
            if (appended < 0)
                goto fail;
        }
        if ((unsigned int)count < wanted) /* the queue ran dry */
            break;
        flags = MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC;
        spin = 0.0;
    }
    return ready;
fail:
    Py_DECREF(ready);
    return NULL;
}

static PyMethodDef Receiver_methods[] = {
    {"receive", (PyCFunction)(void (*)(void))Receiver_receive, METH_VARARGS | METH_KEYWORDS,
     "receive(sock, limit, *, wait=False, spin=0.0) -> list of Datagram\n\n"
     "Every datagram queued on sock (at most limit), without blocking; with wait, a blocking\n"
     "socket first waits for one in the same call (MSG_WAITFORONE). With spin, polls for up\n"
     "to that many seconds without blocking before the call that may block."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Receiver_members[] = {
    {"size", T_PYSSIZET, offsetof(Receiver, size), READONLY, "bytes kept per datagram"},
    {"slots", T_UINT, offsetof(Receiver, slots), READONLY, "datagrams per recvmmsg"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ReceiverType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "multicast.core._fastio.Receiver",
    .tp_doc = "Receiver(size, slots=64): reads up to slots datagrams of up to size bytes per\n"
              "recvmmsg, into buffers of its own. One thread at a time.",
    .tp_basicsize = sizeof(Receiver),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Receiver_init,
    .tp_dealloc = (destructor)Receiver_dealloc,
    .tp_methods = Receiver_methods,
    .tp_members = Receiver_members,
};

/* --- sending ------------------------------------------------------------------------------- */

/* sendmmsg the `count` messages with the GIL released, retrying after signals and partial
 * sends. How many went, or -1 with an exception set; stops early (no error) when the socket
 * would block. */
static Py_ssize_t transmit(int fd, struct mmsghdr *messages, unsigned int count) {
    unsigned int done = 0;
    while (done < count) {
        int result, failure;
        Py_BEGIN_ALLOW_THREADS
        result = sendmmsg(fd, messages + done, count - done, 0);
        failure = errno;
        Py_END_ALLOW_THREADS
        if (result > 0) {
            done += (unsigned int)result;
        } else if (result == 0 || failure == EAGAIN || failure == EWOULDBLOCK) {
            break;
        } else if (failure == EINTR) {
            if (PyErr_CheckSignals() < 0)
                return -1;
        } else {
            errno = failure;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
    }
    return done;
}

/* The exception being raised, taken aside (and given back) as one object. */
static PyObject *take_error(void) {
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL && value != NULL)
        PyException_SetTraceback(value, traceback);
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    return value;
#endif
}

static void give_error(PyObject *error) {
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(error);
#else
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(error)), error,
                  PyException_GetTraceback(error));
#endif
}

static PyObject *send_payloads(PyObject *module, PyObject *args) {
    int fd;
    PyObject *family, *payloads;
    Py_buffer name;
    Py_ssize_t limit, sent = 0;
    (void)module;
    if (!PyArg_ParseTuple(args, "iOOy*n:send", &fd, &family, &payloads, &name, &limit))
        return NULL;
    struct sockaddr_storage destination;
    memset(&destination, 0, sizeof destination);
    if (name.len <= 0 || (size_t)name.len > sizeof(struct sockaddr_in6)) {
        PyBuffer_Release(&name);
        return PyErr_Format(PyExc_ValueError, "a destination of %zd bytes", name.len);
    }
    memcpy(&destination, name.buf, (size_t)name.len);
    socklen_t named = (socklen_t)name.len;
    PyBuffer_Release(&name);
    PyObject *iterator = PyObject_GetIter(payloads);
    if (iterator == NULL)
        return NULL;
    Py_buffer views[SEND_SLOTS];
    struct iovec iovecs[SEND_SLOTS];
    struct mmsghdr messages[SEND_SLOTS];
    memset(messages, 0, sizeof messages);
    for (;;) {
        unsigned int count = 0;
        int exhausted = 0, failed = 0;
        while (count < SEND_SLOTS) {
            PyObject *payload = PyIter_Next(iterator);
            if (payload == NULL) {
                failed = PyErr_Occurred() != NULL;
                exhausted = 1;
                break;
            }
            int viewed = PyObject_GetBuffer(payload, &views[count], PyBUF_SIMPLE);
            Py_DECREF(payload); /* the view holds its own reference */
            if (viewed < 0) {
                failed = 1;
                break;
            }
            if (views[count].len > limit) {
                PyObject *checked =
                    PyObject_CallFunction(size_check, "On", family, views[count].len);
                Py_XDECREF(checked); /* it raises, naming the size */
                if (checked != NULL)
                    PyErr_Format(PyExc_ValueError, "a payload of %zd bytes", views[count].len);
                PyBuffer_Release(&views[count]);
                failed = 1;
                break;
            }
            iovecs[count].iov_base = views[count].buf;
            iovecs[count].iov_len = (size_t)views[count].len;
            messages[count].msg_hdr.msg_name = &destination;
            messages[count].msg_hdr.msg_namelen = named;
            messages[count].msg_hdr.msg_iov = &iovecs[count];
            messages[count].msg_hdr.msg_iovlen = 1;
            count++;
        }
        PyObject *error = failed ? take_error() : NULL; /* raised once those before are sent */
        Py_ssize_t done = transmit(fd, messages, count);
        for (unsigned int index = 0; index < count; index++)
            PyBuffer_Release(&views[index]);
        if (done < 0 || (Py_ssize_t)count > done) { /* refused, or it would block */
            Py_XDECREF(error);
            Py_DECREF(iterator);
            return done < 0 ? NULL : PyLong_FromSsize_t(sent + done);
        }
        sent += done;
        if (failed) {
            give_error(error);
            Py_DECREF(iterator);
            return NULL;
        }
        if (exhausted) {
            Py_DECREF(iterator);
            return PyLong_FromSsize_t(sent);
        }
    }
}

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
    {"send", send_payloads, METH_VARARGS,
     "send(fd, family, payloads, name, limit) -> int\n\n"
     "Send each payload to the sockaddr `name` with sendmmsg; how many were sent. Stops early\n"
     "when the socket would block; a payload over `limit` bytes, or an error of the\n"
     "iterable, is raised after the payloads before it were sent."},
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
        PyModule_AddIntConstant(module, "CONTROL_SPACE", (long)CONTROL_SPACE) < 0 ||
        PyModule_AddIntConstant(module, "SEND_SLOTS", SEND_SLOTS) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
