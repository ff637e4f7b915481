"""The structure of a NIR graph for ``from_nir``: read, flatten subgraphs, check, order, cut cycles.

Pure functions over ``nodes: dict[name, nir.NIRNode]`` and ``edges: list[(src, dst)]``; every
problem raises ``ExportError`` naming the node or edge (and the file).

Recurrent graphs. NIR's nodes are continuous-time systems, and an edge is instantaneous; a graph
with a cycle (snnTorch's ``RLeaky``: ``lif -> w_rec -> lif``) is run one time step at a time, and
each cycle is cut at one edge that carries its source's output of the *previous* step (a one-step
delay, the discretisation every discrete-time simulator uses). The cut is placed on an edge that
leaves a stateful node (a neuron or ``Delay``), so that stateless nodes downstream of it (the
recurrent weights and their bias) still run in the current step: snnTorch's
``mem[t] = beta mem[t-1] + x[t] + W s[t-1] + b``. Of the stateful nodes on a cycle, the one found
last in a depth-first walk from the Input is cut (the edge that goes back towards the input);
a cycle without stateful nodes is cut at the edge that closes it in that walk. A ``Delay`` of
``d >= 1`` steps on a cycle needs no extra step: its outgoing edges are cut and it delays by
``d - 1``, so the loop's total delay stays ``d``.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import nir

from .errors import ExportError

Edge = tuple[str, str]


def read_graph(source) -> nir.NIRGraph:
    """A ``nir.NIRGraph`` as given, or read from a ``.nir`` (HDF5) file with errors naming the path."""
    if isinstance(source, nir.NIRGraph):
        return source
    if not isinstance(source, (str, Path)):
        raise TypeError(f"from_nir takes a nir.NIRGraph or the path of a .nir file, got {type(source).__name__}")
    import h5py

    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"no NIR file at {path}")
    if not h5py.is_hdf5(path):
        raise ExportError(f"{path} is not a NIR file: NIR graphs are HDF5 files (written by nir.write), "
                          "and this file has no HDF5 signature")
    try:
        return nir.read(path)
    except ValueError as error:
        if "type" not in str(error).lower():
            raise _unreadable(path, error) from None
    except Exception as error:  # nir.read raises bare KeyError/AssertionError on unknown or broken nodes
        raise _unreadable(path, error) from None
    # nir.read type-checks every subgraph against the types it declares, and refuses graphs whose
    # declared types are stale; from_nir checks the shapes the edges bring itself.
    try:
        return _read_unchecked(path)
    except Exception as error:
        raise _unreadable(path, error) from None


def _read_unchecked(path: Path) -> nir.NIRGraph:
    import h5py
    from nir.serialization import hdf2dict

    with h5py.File(path, "r") as f:
        data = hdf2dict(f["node"])

    def unchecked(d: dict) -> None:
        if d.get("type") == "NIRGraph":
            d["type_check"] = False
            for node in d.get("nodes", {}).values():
                unchecked(node)

    unchecked(data)
    return nir.dict2NIRNode(data)


def _unreadable(path: Path, error: Exception) -> ExportError:
    return ExportError(f"cannot read the NIR graph in {path}: {type(error).__name__}: {error} (a node type "
                       f"or field that nir {_nir_version()} does not know, or a damaged file)")


def _nir_version() -> str:
    from importlib.metadata import version

    return version("nir")


def flatten(graph: nir.NIRGraph, prefix: str = "") -> tuple[dict[str, nir.NIRNode], list[Edge], set[str]]:
    """Nodes, edges and pass-through nodes, with every subgraph inlined as ``sub.node``.

    An edge into (out of) a subgraph ``sub`` goes to its single ``Input`` (from its ``Output``);
    the subgraph's own ``Input``/``Output`` nodes stay as pass-through nodes.
    """
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[Edge] = []
    passthrough: set[str] = set()
    ends: dict[str, tuple[str, str]] = {}  # subgraph name -> (its input, its output)
    for name, node in graph.nodes.items():
        full = prefix + name
        if isinstance(node, nir.NIRGraph):
            inner_nodes, inner_edges, inner_pass = flatten(node, full + ".")
            passthrough |= inner_pass | {full + "." + k for k, n in node.nodes.items()
                                         if isinstance(n, (nir.Input, nir.Output))}
            ins = [k for k, n in node.nodes.items() if isinstance(n, nir.Input)]
            outs = [k for k, n in node.nodes.items() if isinstance(n, nir.Output)]
            ends[full] = (f"{full}.{ins[0]}" if len(ins) == 1 else "", f"{full}.{outs[0]}" if len(outs) == 1 else "")
            for inner in inner_nodes:
                if inner in nodes or inner in graph.nodes:
                    raise ExportError(f"subgraph {full!r}: its node {inner!r} clashes with another node's name")
            nodes.update(inner_nodes)
            edges.extend(inner_edges)
        else:
            nodes[full] = node
    for src, dst in graph.edges:
        src, dst = prefix + str(src), prefix + str(dst)
        if src in ends:
            src = ends[src][1] or _no_single_end(src, "Output")
        if dst in ends:
            dst = ends[dst][0] or _no_single_end(dst, "Input")
        edges.append((src, dst))
    return nodes, edges, passthrough


def _no_single_end(name: str, kind: str) -> str:
    raise ExportError(f"an edge names subgraph {name!r}, which has no single {kind} node to connect it "
                      f"to; name the node inside it ({name}.<node>)")


def check_structure(nodes: dict[str, nir.NIRNode], edges: list[Edge], passthrough: set[str]) -> tuple[str, str]:
    """The names of the graph's one Input and one Output; ``ExportError`` on a malformed graph."""
    for src, dst in edges:
        for end, role in ((src, "source"), (dst, "destination")):
            if end not in nodes:
                close = difflib.get_close_matches(end, list(nodes), n=3)
                hint = f" (close: {', '.join(map(repr, close))})" if close else ""
                raise ExportError(f"edge ({src!r}, {dst!r}): its {role} {end!r} is not a node of the graph{hint}")
    seen: set[Edge] = set()
    for edge in edges:
        if edge in seen:
            raise ExportError(f"edge {edge} appears twice; NIR sums distinct edges only (nir's "
                              "validate_structure rejects duplicates): scale the source by 2 with a Scale node")
        seen.add(edge)
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input) and k not in passthrough]
    outputs = [k for k, n in nodes.items() if isinstance(n, nir.Output) and k not in passthrough]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ExportError(f"from_nir needs one Input and one Output node, the graph has inputs {inputs} "
                          f"and outputs {outputs}")
    for src, dst in edges:
        if dst == inputs[0]:
            raise ExportError(f"edge ({src!r}, {dst!r}) leads into the Input node")
        if src == outputs[0]:
            raise ExportError(f"edge ({src!r}, {dst!r}) leaves the Output node")
    return inputs[0], outputs[0]


def discovery_order(nodes, edges: list[Edge], start: str) -> list[str]:
    """Nodes in the order a depth-first walk from ``start`` (following edges in order) finds them."""
    succ = successors(nodes, edges)
    order, seen, stack = [], set(), [start]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        order.append(name)
        stack.extend(reversed([d for d in succ[name] if d not in seen]))
    return order


def successors(nodes, edges: list[Edge]) -> dict[str, list[str]]:
    succ: dict[str, list[str]] = {name: [] for name in nodes}
    for src, dst in edges:
        succ[src].append(dst)
    return succ


def needed_nodes(nodes, edges: list[Edge], input_name: str, output_name: str) -> list[str]:
    """Nodes on a path from the Input to the Output (others cannot change the output)."""
    reach = set(discovery_order(nodes, edges, input_name))
    if output_name not in reach:
        raise ExportError(f"the Output node {output_name!r} cannot be reached from the Input {input_name!r}")
    back = set(discovery_order(nodes, [(d, s) for s, d in edges], output_name))
    for name in nodes:
        if name in back and name not in reach:
            raise ExportError(f"NIR node {name!r} ({type(nodes[name]).__name__}) feeds the output but cannot "
                              f"be reached from the Input {input_name!r} (no edge leads into it)")
    return [name for name in nodes if name in reach and name in back]


def cut_cycles(nodes, edges: list[Edge], input_name: str, stateful, absorbs) -> tuple[list[str], set[Edge], set[str]]:
    """``(order, delayed, absorbed)``: a run order of ``nodes``, the edges cut to break every cycle
    (see the module docstring) and the Delay nodes whose cut edges take one of their own steps.

    ``stateful(name)``: the node has state. ``absorbs(name)``: a Delay of at least one step, which
    breaks a cycle by itself: all its outgoing edges are cut and it delays one step less.
    """
    found = {name: i for i, name in enumerate(discovery_order(nodes, edges, input_name))}
    delayed: set[Edge] = set()
    absorbed: set[str] = set()
    while (cycle := _find_cycle(nodes, [e for e in edges if e not in delayed], found)) is not None:
        delays = [src for src, _ in cycle if absorbs(src)]
        leaving_state = [e for e in cycle if stateful(e[0])]
        if delays:
            absorbed.add(delays[0])
            delayed.update(e for e in edges if e[0] == delays[0])
        elif leaving_state:
            delayed.add(max(leaving_state, key=lambda e: found.get(e[0], len(found))))
        else:
            delayed.add(cycle[-1])  # the edge that closes the cycle in the walk
    return _topological(nodes, [e for e in edges if e not in delayed], found), delayed, absorbed


def _find_cycle(nodes, edges: list[Edge], found: dict[str, int]) -> list[Edge] | None:
    """The edges of one cycle (in walk order, the closing edge last), or None."""
    succ = successors(nodes, edges)
    colour = {name: 0 for name in nodes}  # 0 new, 1 on the stack, 2 done
    for root in sorted(nodes, key=lambda n: found.get(n, len(found))):
        if colour[root]:
            continue
        path, stack = [root], [iter(succ[root])]
        colour[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                colour[path.pop()] = 2
                stack.pop()
            elif colour[nxt] == 1:
                loop = path[path.index(nxt):] + [nxt]
                return list(zip(loop[:-1], loop[1:]))
            elif colour[nxt] == 0:
                colour[nxt] = 1
                path.append(nxt)
                stack.append(iter(succ[nxt]))
    return None


def _topological(nodes, edges: list[Edge], found: dict[str, int]) -> list[str]:
    """Kahn's order of an acyclic graph, ties broken by the walk order (deterministic)."""
    indegree = {name: 0 for name in nodes}
    for _, dst in edges:
        indegree[dst] += 1
    succ = successors(nodes, edges)
    rank = lambda n: found.get(n, len(found))  # noqa: E731
    ready = sorted((n for n, d in indegree.items() if d == 0), key=rank)
    order = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for dst in succ[name]:
            indegree[dst] -= 1
            if indegree[dst] == 0:
                ready.append(dst)
        ready.sort(key=rank)
    return order
