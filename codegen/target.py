"""The host machine as LLVM sees it: one target machine for this CPU (its
name and every feature it reports, so AVX-512 code is emitted where the CPU
has it), the O3 pipeline of llvmlite's pass builder, and the MCJIT engine
that turns a module into callable machine code.

Everything that compiles goes through ``compile_module``; everything that
reads the generated code goes through ``assembly``. The fingerprint names the
CPU and the compiler, so a cached object is never loaded on a machine that
cannot run it."""

from __future__ import annotations

import functools
import hashlib

import llvmlite
import llvmlite.binding as llvm

# Full-width vectors: LLVM's tuning for recent Intel server cores prefers
# 256-bit ones, which halves the throughput of our streaming loops.
TUNING = ",-prefer-256-bit"


def new_target_machine() -> llvm.TargetMachine:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=_features(),
                                        opt=3, codemodel="jitdefault", jit=True)


@functools.cache
def target_machine() -> llvm.TargetMachine:
    """The machine the optimiser and the assembly printer use. An engine owns
    (and frees) the machine it is given, so each engine gets a new one."""
    return new_target_machine()


@functools.cache
def _features() -> str:
    features = llvm.get_host_cpu_features().flatten()
    return features + TUNING if "+avx512f" in features else features


@functools.cache
def fingerprint() -> str:
    """What a compiled object depends on besides its IR: the CPU and the compiler."""
    text = "|".join([llvm.get_process_triple(), llvm.get_host_cpu_name(), _features(),
                     llvmlite.__version__, ".".join(map(str, llvm.llvm_version_info))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.cache
def triple_and_layout() -> tuple[str, str]:
    tm = target_machine()
    return tm.triple, str(tm.target_data)


def optimize(module: llvm.ModuleRef, unroll: bool = False) -> None:
    """The O3 pipeline, with loop and SLP vectorisation and interleaving, in place. Loops are
    unrolled beyond what the vectoriser interleaves only when ``unroll`` is asked for: it is
    a third of the compile time of the MLP training step, and paid for itself on one of the
    benchmark workloads only (see ``Program.unroll``)."""
    tm = target_machine()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = unroll
    pto.loop_interleaving = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(module, pb)


def tidy(module: llvm.ModuleRef) -> None:
    """The light pipeline, for code that is vectorised and scheduled by hand (the matmul
    library, gemm.py): instruction combining and CFG simplification only, in place. O3 finds
    nothing to add to the micro-kernels' k loops (their assembly is the same instructions)
    and takes seven times as long: 0.44 s against 0.06 s over the float32 library, whose
    machine code takes another 0.2 s either way."""
    pb = llvm.create_pass_builder(target_machine(), llvm.create_pipeline_tuning_options())
    pm = llvm.create_new_module_pass_manager()
    pm.add_instruction_combine_pass()
    pm.add_simplify_cfg_pass()
    pm.run(module, pb)


def parse(text: str) -> llvm.ModuleRef:
    module = llvm.parse_assembly(text)
    module.triple, module.data_layout = triple_and_layout()
    module.verify()
    return module


class Engine:
    """Machine code loaded into this process, kept alive as long as this object."""

    def __init__(self, objects: tuple[bytes, ...] = (), module: llvm.ModuleRef | None = None):
        """Load ``objects`` (object files' bytes) or compile ``module``; ``object_code`` is then
        the compiled module's object, for the disk cache."""
        self.object_code: bytes | None = None
        self._engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), new_target_machine())

        def notify(_module, buffer: bytes) -> None:
            self.object_code = buffer

        self._engine.set_object_cache(notify, lambda _module: None)
        for data in objects:
            self._engine.add_object_file(llvm.ObjectFileRef.from_data(data))
        if module is not None:
            self._engine.add_module(module)
        self._engine.finalize_object()

    def address(self, name: str) -> int:
        address = self._engine.get_function_address(name)
        if not address:
            raise KeyError(f"no function {name!r} in the compiled code")
        return address

    def global_address(self, name: str) -> int:
        address = self._engine.get_global_value_address(name)
        if not address:
            raise KeyError(f"no global {name!r} in the compiled code")
        return address


def optimized(text: str, unroll: bool = False, tuned: bool = False) -> llvm.ModuleRef:
    """Parse and optimise LLVM IR text: O3, or ``tidy`` only for ``tuned`` code (written vectorised)."""
    module = parse(text)
    if tuned:
        tidy(module)
    else:
        optimize(module, unroll)
    return module


def compile_module(text: str, unroll: bool = False, tuned: bool = False) -> tuple[Engine, llvm.ModuleRef]:
    """Parse, optimise and compile LLVM IR text; returns the engine and the optimised module."""
    module = optimized(text, unroll, tuned)
    return Engine(module=module), module


def assembly(module: llvm.ModuleRef) -> str:
    return target_machine().emit_assembly(module)
