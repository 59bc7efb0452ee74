# cython: language_level=3
"""STREAM-like kernels compiled with the project's flags, for the memory-bandwidth roofline of `tumorca bench`."""
from cython.parallel cimport prange


def triad(double[::1] a, const double[::1] b, const double[::1] c, double s, int num_threads):
    """a = b + s*c (reads 16 B and writes 8 B per element)."""
    cdef Py_ssize_t i, n = a.shape[0]
    with nogil:
        for i in prange(n, schedule="static", num_threads=num_threads):
            a[i] = b[i] + s * c[i]


def scale(float[::1] a, const float[::1] b, float s, int num_threads):
    """a = s*b on float32 (reads 4 B and writes 4 B per element), the access pattern of a field sweep."""
    cdef Py_ssize_t i, n = a.shape[0]
    with nogil:
        for i in prange(n, schedule="static", num_threads=num_threads):
            a[i] = s * b[i]
