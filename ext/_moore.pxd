# The 26 Moore directions in lexicographic (dz, dy, dx) order, shared by every kernel that looks at neighbours.
# src/tumorca/_constants.py builds the same list (MOORE); tests check they agree.
cdef extern from *:
    """
    static const int TC_DZ[26] = {-1,-1,-1,-1,-1,-1,-1,-1,-1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    static const int TC_DY[26] = {-1,-1,-1, 0, 0, 0, 1, 1, 1,-1,-1,-1, 0, 0, 1, 1, 1,-1,-1,-1, 0, 0, 0, 1, 1, 1};
    static const int TC_DX[26] = {-1, 0, 1,-1, 0, 1,-1, 0, 1,-1, 0, 1,-1, 1,-1, 0, 1,-1, 0, 1,-1, 0, 1,-1, 0, 1};
    """
    const int* TC_DZ
    const int* TC_DY
    const int* TC_DX
