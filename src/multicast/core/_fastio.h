/* multicast.core._fastio: what its two files share. _fastio.c holds the module, the Datagram
 * class it fills and the receiving side (Receiver); _fastio_send.c the sending side (send,
 * send_each). */
#ifndef MULTICAST_FASTIO_H
#define MULTICAST_FASTIO_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define SEND_SLOTS 64 /* datagrams per sendmmsg */

/* check_payload_size(family, size) of multicast.core (configure() sets it): raises for a
 * payload too big for one datagram, naming its size. */
extern PyObject *fastio_size_check;

/* A C int from a Python int, or -1 with an exception set for anything else. */
int fastio_as_int(PyObject *number, int *value);

/* send(fd, family, payloads, name, limit) and send_each(fd, family, pairs, limit): see the
 * module's method table in _fastio.c. */
PyObject *fastio_send(PyObject *module, PyObject *args);
PyObject *fastio_send_each(PyObject *module, PyObject *args);

#endif
