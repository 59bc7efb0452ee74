"""Extension definitions for tumorca's compiled kernels (ext/*.pyx).

Everything else about the package lives in pyproject.toml.  Two environment switches:

* ``TUMORCA_NO_OPENMP=1`` builds without OpenMP (single-threaded kernels), the same fallback a compiler without
  OpenMP gets after the probe below fails.
* ``TUMORCA_DEBUG=1`` turns Cython's bounds, wraparound and initialisation checks back on.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent.resolve()
MODULES = ["_rng", "_o2", "_fields", "_tissue", "_vessels", "_neutrophils", "_stream", "_flow"]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _openmp_flags(compiler_cmd: list[str]) -> tuple[list[str], list[str]]:
    """Compile and link a tiny OpenMP program; return (compile, link) flags, or empty lists if it fails."""
    if _env_flag("TUMORCA_NO_OPENMP"):
        return [], []
    code = "#include <omp.h>\nint main(void){int n=0;\n#pragma omp parallel reduction(+:n)\nn+=1;\nreturn n>0?0:1;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "probe.c")
        src.write_text(code)
        try:
            res = subprocess.run(compiler_cmd + ["-fopenmp", str(src), "-o", str(Path(tmp, "probe"))],
                                 capture_output=True, timeout=120)
        except (OSError, subprocess.SubprocessError):
            return [], []
    if res.returncode != 0:
        print("tumorca: OpenMP not available, building single-threaded kernels", file=sys.stderr)
        return [], []
    return ["-fopenmp"], ["-fopenmp"]


class BuildExt(build_ext):
    def finalize_options(self):
        super().finalize_options()
        # The modules are independent: compile them side by side on every core (setuptools' -j) unless told.
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

    def build_extensions(self):
        cc = self.compiler.compiler_so[:1] if hasattr(self.compiler, "compiler_so") else [
            sysconfig.get_config_var("CC") or "cc"]
        c_omp, l_omp = _openmp_flags(cc if shutil.which(cc[0]) else ["cc"])
        # -ffp-contract=off: no fused multiply-add, so compiled arithmetic rounds exactly as NumPy's does.
        # No -ffast-math and no -march=native: both break bitwise reproducibility or portability.
        cflags = ["-O3", "-ffp-contract=off", "-fno-strict-aliasing"] + c_omp
        if _env_flag("TUMORCA_DEBUG"):
            cflags = ["-O1", "-g", "-ffp-contract=off"] + c_omp
        for ext in self.extensions:
            ext.extra_compile_args = cflags
            ext.extra_link_args = l_omp
            ext.define_macros = [("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION"),
                                 ("TUMORCA_OPENMP", "1" if c_omp else "0")]
        # Flags are not part of setuptools' up-to-date check: always rebuild so a switch takes effect.
        self.force = True
        super().build_extensions()


debug = _env_flag("TUMORCA_DEBUG")
directives = {
    "language_level": 3,
    "boundscheck": debug,
    "wraparound": debug,
    "initializedcheck": debug,
    "cdivision": True,
    "embedsignature": True,
}

extensions = [
    Extension(f"tumorca.{name}", [f"ext/{name}.pyx"], include_dirs=["ext", np.get_include()])
    for name in MODULES
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=directives,
                          compile_time_env={"TUMORCA_DEBUG": debug}),
    cmdclass={"build_ext": BuildExt},
)
