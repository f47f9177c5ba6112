/* multicast.core._fastio, the sending side: sendmmsg straight from the payloads' buffers, to
 * one destination (send) or each to its own address (send_each). See _fastio.c. */
#include "_fastio.h"

/* sendmmsg the `count` messages with the GIL released, retrying after signals (whose handlers
 * run, unless `pending` says an exception waits to be raised) and partial sends. How many
 * went, or -1 with an exception set; stops early (no error) when the socket would block. With
 * `failure`, a refused message is not raised but its errno stored there, and it counts. */
static Py_ssize_t transmit(int fd, struct mmsghdr *messages, unsigned int count, int pending,
                           int *failure) {
    unsigned int done = 0;
    while (done < count) {
        int result, code;
        Py_BEGIN_ALLOW_THREADS
        result = sendmmsg(fd, messages + done, count - done, 0);
        code = errno;
        Py_END_ALLOW_THREADS
        if (result > 0) {
            done += (unsigned int)result;
        } else if (result < 0 && code == EINTR) {
            if (!pending && PyErr_CheckSignals() < 0)
                return -1;
        } else if (failure != NULL) {
            failure[done++] = result == 0 ? EAGAIN : code;
        } else if (result == 0 || code == EAGAIN || code == EWOULDBLOCK) {
            break;
        } else {
            errno = code;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
    }
    return done;
}

/* Message `index` of a batch: `length` bytes at `data` to the address `name`. */
static void message_at(struct mmsghdr *messages, struct iovec *iovecs, unsigned int index,
                       void *data, size_t length, void *name, socklen_t named) {
    iovecs[index] = (struct iovec){.iov_base = data, .iov_len = length};
    messages[index] = (struct mmsghdr){.msg_hdr = {.msg_name = name, .msg_namelen = named,
                                                   .msg_iov = &iovecs[index], .msg_iovlen = 1}};
}

/* A view of `payload`'s bytes; -1 with an exception set when it is none or over `limit`
 * bytes (the exception of fastio_size_check, which names the size). */
static int view_payload(PyObject *payload, Py_buffer *view, PyObject *family, Py_ssize_t limit) {
    if (PyObject_GetBuffer(payload, view, PyBUF_SIMPLE) < 0)
        return -1;
    if (view->len <= limit)
        return 0;
    PyObject *checked = PyObject_CallFunction(fastio_size_check, "On", family, view->len);
    Py_XDECREF(checked);
    if (checked != NULL)
        PyErr_Format(PyExc_ValueError, "a payload of %zd bytes", view->len);
    PyBuffer_Release(view);
    return -1;
}

PyObject *fastio_send(PyObject *module, PyObject *args) {
    PyObject *family, *payloads;
    Py_buffer name, views[SEND_SLOTS];
    Py_ssize_t limit, sent = 0;
    struct sockaddr_in6 destination; /* room for a sockaddr_in too */
    struct iovec iovecs[SEND_SLOTS];
    struct mmsghdr messages[SEND_SLOTS];
    int fd;
    (void)module;
    if (!PyArg_ParseTuple(args, "iOOy*n:send", &fd, &family, &payloads, &name, &limit))
        return NULL;
    socklen_t named = (socklen_t)name.len;
    if (name.len > 0 && (size_t)name.len <= sizeof destination)
        memcpy(&destination, name.buf, (size_t)name.len);
    PyBuffer_Release(&name);
    if (named == 0 || named > sizeof destination)
        return PyErr_Format(PyExc_ValueError, "a destination of %u bytes", named);
    PyObject *iterator = PyObject_GetIter(payloads);
    if (iterator == NULL)
        return NULL;
    for (;;) {
        unsigned int count = 0;
        int exhausted = 0, failed = 0;
        while (count < SEND_SLOTS && !exhausted && !failed) {
            PyObject *payload = PyIter_Next(iterator);
            exhausted = payload == NULL;
            failed = exhausted ? PyErr_Occurred() != NULL
                               : view_payload(payload, &views[count], family, limit) < 0;
            Py_XDECREF(payload); /* a view holds its own reference */
            if (!exhausted && !failed) {
                message_at(messages, iovecs, count, views[count].buf, (size_t)views[count].len,
                           &destination, named);
                count++;
            }
        }
        /* An error is raised once the payloads before it are sent: it waits meanwhile. */
        Py_ssize_t done = transmit(fd, messages, count, failed, NULL);
        for (unsigned int index = 0; index < count; index++)
            PyBuffer_Release(&views[index]);
        sent += done;
        if (done >= 0 && done < (Py_ssize_t)count) /* it would block: what failed is not reached */
            PyErr_Clear();
        if (done < 0 || failed || exhausted || done < (Py_ssize_t)count) {
            Py_DECREF(iterator);
            return done < 0 || (failed && done == (Py_ssize_t)count) ? NULL
                                                                      : PyLong_FromSsize_t(sent);
        }
    }
}

/* The sockaddr of a (host, port) or (host, port, flow info, scope) address of `family`;
 * 0 when the host is no address of that family, -1 with an exception set for bad input. */
static int encode_address(PyObject *address, int family, struct sockaddr_in6 *name,
                          socklen_t *named) {
    const char *host;
    int port;
    unsigned int flow = 0, scope = 0;
    if (!PyTuple_Check(address)) { /* PyArg_ParseTuple would raise SystemError */
        PyErr_Format(PyExc_TypeError, "an address is a tuple, not %.50s",
                     Py_TYPE(address)->tp_name);
        return -1;
    }
    if (!PyArg_ParseTuple(address, "si|II", &host, &port, &flow, &scope))
        return -1;
    if (port < 0 || port > 0xFFFF) {
        PyErr_SetString(PyExc_OverflowError, "port must be 0-65535.");
        return -1;
    }
    memset(name, 0, sizeof *name);
    name->sin6_family = (sa_family_t)family;
    name->sin6_port = htons((uint16_t)port);
    if (family == AF_INET) {
        struct sockaddr_in *v4 = (struct sockaddr_in *)(void *)name;
        *named = sizeof *v4;
        return inet_pton(AF_INET, host, &v4->sin_addr);
    }
    name->sin6_flowinfo = htonl(flow);
    name->sin6_scope_id = scope;
    *named = sizeof *name;
    return inet_pton(AF_INET6, host, &name->sin6_addr);
}

PyObject *fastio_send_each(PyObject *module, PyObject *args) {
    PyObject *family, *pairs, *failures = NULL;
    Py_ssize_t limit;
    int fd, family_number;
    (void)module;
    if (!PyArg_ParseTuple(args, "iOO!n:send_each", &fd, &family, &PyList_Type, &pairs, &limit) ||
        fastio_as_int(family, &family_number) < 0)
        return NULL;
    Py_ssize_t total = PyList_GET_SIZE(pairs), index = 0, viewed = 0, done = 0;
    Py_buffer *views = PyMem_Calloc((size_t)total + 1, sizeof *views);
    struct sockaddr_in6 *names = PyMem_Calloc((size_t)total + 1, sizeof *names);
    struct iovec *iovecs = PyMem_Calloc((size_t)total + 1, sizeof *iovecs);
    struct mmsghdr *messages = PyMem_Calloc((size_t)total + 1, sizeof *messages);
    int *refused = PyMem_Calloc((size_t)total + 1, sizeof *refused);
    if (!views || !names || !iovecs || !messages || !refused) {
        PyErr_NoMemory();
        goto end;
    }
    for (; index < total; index++, viewed++) {
        PyObject *pair = PyList_GET_ITEM(pairs, index);
        socklen_t named = 0;
        int usable;
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "send_each() takes (payload, address) pairs");
            goto end;
        }
        if (view_payload(PyTuple_GET_ITEM(pair, 0), &views[index], family, limit) < 0)
            goto end;
        if ((usable = encode_address(PyTuple_GET_ITEM(pair, 1), family_number, &names[index],
                                     &named)) < 0) {
            viewed++;
            goto end;
        }
        refused[index] = usable ? 0 : EAFNOSUPPORT; /* not sent: its message names nowhere */
        message_at(messages, iovecs, (unsigned int)index, views[index].buf,
                   (size_t)views[index].len, &names[index], usable ? named : 0);
    }
    /* Messages are sent in runs between the unusable ones. */
    for (Py_ssize_t start = 0; start < total && done >= 0; start = index + 1) {
        for (index = start; index < total && !refused[index]; index++)
            ;
        done = transmit(fd, messages + start, (unsigned int)(index - start), 0, refused + start);
    }
    failures = done < 0 ? NULL : PyList_New(0);
    for (index = 0; failures != NULL && index < total; index++) {
        PyObject *failure = refused[index] ? Py_BuildValue("(ni)", index, refused[index]) : NULL;
        if (refused[index] && (failure == NULL || PyList_Append(failures, failure) < 0))
            Py_CLEAR(failures);
        Py_XDECREF(failure);
    }
end:
    for (index = 0; views != NULL && index < viewed; index++)
        PyBuffer_Release(&views[index]);
    PyMem_Free(views);
    PyMem_Free(names);
    PyMem_Free(iovecs);
    PyMem_Free(messages);
    PyMem_Free(refused);
    return failures;
}
