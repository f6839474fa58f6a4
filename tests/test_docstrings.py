"""Every public function and class of the covered modules has a numpydoc docstring with a
``Parameters`` section naming each parameter and a ``Returns`` (or ``Yields``) section.

The docstrings are parsed with :mod:`numpydoc.docscrape`, as the Sphinx build reads them,
so a section whose underline is too short (and is therefore read as prose) or an unknown
section name fails here, not only a missing word.

To cover more of the package, add module names to ``COVERED``; an entry ending in ``.*``
stands for every module directly inside that package (subpackages are listed apart).
``METHODS_COVERED`` names the classes whose public methods are checked too.
Every object the API page (``docs/api.rst``) lists is checked the same way wherever it
is defined; ``API_PENDING`` names those that do not pass yet, and only shrinks.
"""

from __future__ import annotations

import ast
import importlib
import io
import importlib.util
import inspect
import pkgutil
import re
import textwrap
import warnings
from pathlib import Path

import pytest
from numpydoc.docscrape import NumpyDocString

COVERED = (
    "workbench.cli",
    "workbench.errors",
    "workbench.pl",
    "workbench.tl",
    "workbench.testing",
    "workbench.datasets",
    "workbench.commands.benchmark",
    "workbench.commands.demo",
    "workbench.commands.design",
    "workbench.commands.find",
    "workbench.commands.import_",
    "workbench.commands.info",
    "workbench.commands.napari",
    "workbench.commands.serve",
    "workbench.commands.validate",
    "workbench.commands.grn",
    "workbench.commands.plan_pairs",
    "workbench.commands.embed",
    "workbench.data.*",
    "workbench.data.readers.*",
    "workbench.dashboards",
    "workbench.dashboards.base",
    "workbench.dashboards.cache",
    "workbench.dashboards.composite",
    "workbench.dashboards.concepts",
    "workbench.dashboards.embeddings",
    "workbench.dashboards.gene_card",
    "workbench.dashboards.grn",
    "workbench.dashboards.images",
    "workbench.dashboards.map_numbers",
    "workbench.dashboards.overview",
    "workbench.dashboards.perturbation_map",
    "workbench.dashboards.plan",
    "workbench.dashboards.serve",
    "workbench.dashboards.interactions",
    "workbench.dashboards.export",
    "workbench.dashboards.app",
    "workbench.dashboards.phenotype",
    "workbench.dashboards.state",
    "workbench.napari.*",
    "workbench.tools.design.*",
    "workbench.data.simulate.*",
    "workbench.tools.block_choice",
    "workbench.tools.campaign",
    "workbench.tools.gi_scores",
    "workbench.tools.layout",
    "workbench.tools.normalize",
    "workbench.tools.screen_profiles",
    "workbench.tools.velocity",
    "workbench.tools.find",
    "workbench.tools.pair_planning",
    "workbench.tools.planner_choice",
    "workbench.tools.embed",
    "workbench.tools.map_benchmarks",
    "workbench.tools.efaar_benchmarks",
    "workbench.tools.grn",
    "workbench.tools.grn_metrics",
    "workbench.tools.grn_synthetic",
    "workbench.models.design_bounds",
    "workbench.models.guided_search",
    "workbench.models.knockout_eig",
    "workbench.models.pair_selection",
    "workbench.models.exchangeable",
    "workbench.models.probe",
    "workbench.models.vit_arch",
    "workbench.models.vit_mae",
    "workbench.models.vit_weights",
    "workbench.models.gflownet.f_losses",
    "workbench.models.gflownet.losses",
    "workbench.models.gflownet.enumerated_q",
    "workbench.models.gflownet.exact_posterior",
    "workbench.models.additivity",
    "workbench.models.replicates",
    "workbench.models.icfl",
    "workbench.models.topk_sae",
    "workbench.models.combined_call",
    "workbench.models.count_scenarios",
    "workbench.tools.concept_encode",
    "workbench.tools.concept_stream",
    "workbench.models.kl_additivity",
    "workbench.models.separability",
    "workbench.models.interaction_result",
    "workbench.models.interaction_tests",
    "workbench.models.interaction_scenarios",
    "workbench.models.dictionary",
    "workbench.models._checkpoint",
    "workbench.models._device",
    "workbench.models.gflownet.dyngfn",
    "workbench.models.gflownet.env",
    "workbench.models.gflownet.estimators",
    "workbench.models.gflownet.exact",
    "workbench.models.gflownet.sampler",
    "workbench.models.grn_params",
    "workbench.tools.concepts",
    "workbench.tools.concept_model",
    "workbench.tools.concept_eval",
    "workbench.tools.concept_annotation",
    "workbench.tools.concept_pages",
    "workbench.tools.concept_demo",
    "workbench.tools.interactions",
    "workbench.commands.concepts",
    "workbench.commands.interactions",
)

#: Classes whose public methods are held to the same rule (``module.Class``).
METHODS_COVERED = (
    "workbench.data.study.Study",
    "workbench.data.transaction.Transaction",
    "workbench.data.images.ImageStore",
    "workbench.data.selection.SelectionChannel",
    "workbench.data._store.OwnerLock",
    "workbench.data.readers.image_fields.ImageFields",
    "workbench.dashboards.base.StudyView",
    "workbench.dashboards.cache.CachedReads",
    "workbench.dashboards.embeddings.EmbeddingsView",
    "workbench.dashboards.grn.GRNView",
    "workbench.dashboards.images.ImagesView",
    "workbench.dashboards.gene_card.GeneCardView",
    "workbench.dashboards.overview.OverviewView",
    "workbench.dashboards.perturbation_map.PerturbationMapView",
    "workbench.dashboards.plan.PlanView",
    "workbench.dashboards.serve.LoginThrottle",
    "workbench.napari._find.FindWidget",
    "workbench.napari._follow.SelectionFollower",
    "workbench.napari._source.StudySource",
    "workbench.napari._widget.StudyBrowser",
    "workbench.tools.design.screen.ScreenModel",
    "workbench.data.simulate.grn.GRN",
    "workbench.data.simulate.morphology.Morphology",
    "workbench.data.simulate.render.TextureBank",
    "workbench.data.simulate.world.World",
    "workbench.tools.normalize.TVN",
    "workbench.tools.find.FindSession",
    "workbench.models.guided_search.BettingBounds",
    "workbench.models.guided_search.PhenotypeClassifier",
    "workbench.models.guided_search.PhenotypeSearch",
    "workbench.models.guided_search.SearchState",
    "workbench.models.knockout_eig.GraphKnockoutScorer",
    "workbench.models.knockout_eig.KnockoutScorer",
    "workbench.models.pair_selection.LowRankPairModel",
    "workbench.models.exchangeable.ExchangeablePairModel",
    "workbench.models.vit_arch.Attention",
    "workbench.models.vit_arch.Block",
    "workbench.models.vit_arch.LayerScale",
    "workbench.models.vit_arch.MaskedAutoencoderViT",
    "workbench.models.vit_arch.Mlp",
    "workbench.models.vit_arch.ParallelBlock",
    "workbench.models.vit_arch.PatchEmbed",
    "workbench.models.vit_mae.MAEEncoder",
    "workbench.models.gflownet.exact_posterior.ExactParentPosterior",
    "workbench.models.gflownet.screened_posterior.ScreenedParentPosterior",
    "workbench.tools.grn_metrics.AdmissibleSet",
    "workbench.dashboards.state.Selection",
    "workbench.dashboards.base.LiveGlyphs",
    "workbench.dashboards.app.NapariLink",
    "workbench.dashboards.app.Dashboard",
    "workbench.dashboards.interactions.InteractionsView",
    "workbench.models.icfl.ICFL",
    "workbench.models.dictionary.ControlWhitener",
    "workbench.models.dictionary.SparseDictionary",
    "workbench.models.gflownet.dyngfn.DynGFN",
    "workbench.models.gflownet.env.ParentSetEnv",
    "workbench.models.gflownet.estimators.ForwardPolicy",
    "workbench.models.grn_params.LinearVelocityReward",
    "workbench.models.grn_params.IncrementalRidge",
    "workbench.models.grn_params.HyperVelocityModel",
    "workbench.models.grn_params.BootstrapLassoPosterior",
    "workbench.tools.concept_model.ConceptModel",
)

#: Covered modules whose ``Parameters`` entries may still lack a type (``name`` alone
#: instead of ``name : type``); every other covered module names a type on every entry.
UNTYPED = (
)

#: Docstrings known to document a name that is not a parameter, with the reason; an entry
#: is removed once its docstring is fixed.
MISREAD: dict[str, str] = {}

#: Parameters that need no line of their own.
SKIPPED = {"self", "cls"}
SECTION = re.compile(r"^[ \t]*(Parameters|Returns|Yields|Other Parameters|Raises|Warns|"
                     r"Attributes|Methods|See Also|Notes|References|Examples|Warnings)"
                     r"[ \t]*\n[ \t]*([-=]+)[ \t]*$", re.M)


def _module_names() -> list[str]:
    """The covered modules, found without importing them (collection stays free of Qt)."""
    names: list[str] = []
    for entry in COVERED:
        if entry.endswith(".*"):
            spec = importlib.util.find_spec(entry[:-2])
            names.append(spec.name)
            names += [f"{spec.name}.{m.name}"
                      for m in pkgutil.iter_modules(spec.submodule_search_locations)
                      if not m.ispkg]
        else:
            names.append(entry)
    return names


def _import(modname: str):
    if modname.startswith("workbench.napari"):
        # the same guard as tests/napari/conftest.py, before any Qt binding is used
        from workbench.napari._qt_guard import protect_none

        protect_none()
    return importlib.import_module(modname)


#: Classes a module builds on first access (its ``__getattr__``, so that importing it needs
#: no Panel): they are built here, so that the check does not depend on whether an earlier
#: test happened to build them.
LAZY = {"workbench.dashboards.gene_card": ("GeneCardView",),
        "workbench.dashboards.overview": ("OverviewView",)}


def _public_objects(mod):
    """Public functions and classes defined in ``mod`` itself (not imported into it)."""
    for name in LAZY.get(mod.__name__, ()):
        getattr(mod, name)
    for name, obj in sorted(vars(mod).items()):
        if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if getattr(obj, "__module__", None) == mod.__name__:
            yield f"{mod.__name__}.{name}", obj


def _parsed(text: str | None, where: str) -> NumpyDocString:
    assert text, f"{where} has no docstring"
    text = inspect.cleandoc(text)
    for title, underline in SECTION.findall(text):
        assert len(underline) == len(title), (
            f"{where}: the underline of {title!r} is {len(underline)} characters long, "
            f"the title {len(title)}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unknown section name is a warning in numpydoc
        try:
            return NumpyDocString(text)
        except (UserWarning, ValueError) as exc:  # ValueError: a section given twice
            raise AssertionError(f"{where}: {exc}") from None


def _documented(doc: NumpyDocString) -> set[str]:
    names: set[str] = set()
    for section in ("Parameters", "Other Parameters"):
        for param in doc[section]:
            names |= {n.strip().lstrip("*") for n in param.name.split(",")}
    return names


def _needs_documenting(sig: inspect.Signature) -> list[str]:
    return [name for name, p in sig.parameters.items()
            if name not in SKIPPED and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _returns_something(fn) -> bool:
    """Whether ``fn`` can return a value: annotated so, or (unannotated) a ``return x`` or a
    ``yield`` in its own body (nested functions and classes are not its body)."""
    ann = inspect.signature(fn).return_annotation
    if ann is None or ann == "None":
        return False
    if ann is not inspect.Signature.empty:
        return True
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    stack = list(ast.iter_child_nodes(tree.body[0]))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                             ast.ClassDef)):
            continue
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        if isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            return True
        stack.extend(ast.iter_child_nodes(node))
    return False


def _problems(where: str, obj) -> list[str]:
    """What is missing from the docstring of one function or class (empty when complete)."""
    try:
        if inspect.isclass(obj):
            doc = _parsed(obj.__dict__.get("__doc__"), where)
            if issubclass(obj, BaseException) and "__init__" not in vars(obj):
                return []  # an error class with its base's arguments (problem, fix)
            try:
                wanted = _needs_documenting(inspect.signature(obj))
            except (TypeError, ValueError):  # a builtin base without a signature
                return []
        else:
            doc = _parsed(obj.__doc__, where)
            wanted = _needs_documenting(inspect.signature(obj))
            if _returns_something(obj) and not (doc["Returns"] or doc["Yields"]):
                return [f"{where}: no Returns (or Yields) section"]
    except AssertionError as exc:
        return [str(exc)]
    missing = [name for name in wanted if name not in _documented(doc)]
    return [f"{where}: Parameters does not name {', '.join(missing)}"] if missing else []


def test_every_covered_entry_holds_public_objects():
    """A misspelled or emptied entry of ``COVERED`` would make the checks pass vacuously."""
    names = _module_names()
    for entry in COVERED:
        prefix = entry[:-2] if entry.endswith(".*") else entry
        found = [n for n in names if n == prefix or n.startswith(prefix + ".")]
        assert any(list(_public_objects(_import(n))) for n in found), entry


@pytest.mark.parametrize("modname", _module_names())
def test_public_functions_and_classes_have_numpydoc_parameters_and_returns(modname):
    problems = [p for where, obj in _public_objects(_import(modname))
                for p in _problems(where, obj)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("qualname", METHODS_COVERED)
def test_public_methods_have_numpydoc_parameters_and_returns(qualname):
    modname, clsname = qualname.rsplit(".", 1)
    cls = getattr(_import(modname), clsname)
    problems, n = [], 0
    for name, attr in vars(cls).items():
        fn = attr.__func__ if isinstance(attr, (classmethod, staticmethod)) else attr
        if name.startswith("_") or not inspect.isfunction(fn):
            continue  # properties and private helpers
        n += 1
        problems += _problems(f"{qualname}.{name}", fn)
    assert n, f"{qualname} has no public methods"
    assert not problems, "\n".join(problems)


def _form_problems(where: str, obj, typed: bool, misread: bool | None = None) -> list[str]:
    """Entries of a ``Parameters`` section that name no parameter of the signature (a
    renamed argument, prose read as entries) or, when ``typed``, give no type. Stray names
    are let pass where ``misread`` (by default: where ``MISREAD`` lists the object)."""
    misread = where in MISREAD if misread is None else misread
    text = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    if not text:
        return []  # a missing docstring is the other tests' finding
    try:
        names = set(inspect.signature(obj).parameters)
    except (TypeError, ValueError):  # a builtin base without a signature
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        doc = NumpyDocString(inspect.cleandoc(text))
    problems = []
    for entry in doc["Parameters"] + doc["Other Parameters"]:
        listed = [n.strip() for n in entry.name.split(",") if n.strip()]
        stray = [n for n in listed if n.lstrip("*") not in names]
        if stray and misread:
            continue
        if stray:
            problems.append(f"{where}: Parameters names {', '.join(map(repr, stray))}, "
                            "which the signature does not have")
        elif typed and not entry.type.strip() and not entry.name.startswith("*"):
            problems.append(f"{where}: the entry {entry.name!r} gives no type "
                            "(write 'name : type')")
    return problems


def _with_methods(mod):
    """The public objects of ``mod`` and the public methods of its classes."""
    for where, obj in _public_objects(mod):
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            continue  # error classes take their base's (problem, fix)
        yield where, obj
        if inspect.isclass(obj):
            for name, attr in vars(obj).items():
                fn = attr.__func__ if isinstance(attr, (classmethod, staticmethod)) else attr
                if not name.startswith("_") and inspect.isfunction(fn):
                    yield f"{where}.{name}", fn


#: Sphinx's cross-reference roles (``:func:`x```) and its directives that plain docutils
#: does not know: read as literals and as a generic admonition, which docutils checks the
#: same way (the rest of the markup is checked as Sphinx would).
_SPHINX_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|obj|exc|ref|doc):"
                          r"`([^`]*)`")
_SPHINX_DIRECTIVE = re.compile(r"^(\s*)\.\. (seealso|versionadded|versionchanged|"
                               r"deprecated)::", re.M)


def _rst_problems(where: str, obj) -> list[str]:
    """docutils errors and warnings in the reST numpydoc makes of a docstring (an
    undefined ``|substitution|``, an unclosed ``*emphasis``, a broken list): the Sphinx
    build, warnings as errors, fails on them when the object is rendered."""
    from docutils.core import publish_doctree
    from numpydoc.docscrape_sphinx import SphinxDocString

    text = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    if not text:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rst = str(SphinxDocString(inspect.cleandoc(text), config={}))
    rst = _SPHINX_DIRECTIVE.sub(r"\1.. admonition:: \2", rst)
    rst = _SPHINX_ROLE.sub(lambda m: f"``{m.group(1)}``", rst)
    stream = io.StringIO()
    publish_doctree(rst, settings_overrides={"report_level": 2, "halt_level": 5,
                                             "warning_stream": stream})
    found = stream.getvalue().strip()
    return [f"{where}: {line}" for line in found.splitlines()] if found else []


@pytest.mark.parametrize("modname", _module_names())
def test_docstrings_are_valid_restructuredtext(modname):
    problems = [p for where, obj in _with_methods(_import(modname))
                for p in _rst_problems(where, obj)]
    assert not problems, "\n".join(problems)


def test_every_untyped_entry_is_a_covered_module_that_still_lacks_types():
    """A misspelt ``UNTYPED`` entry would exempt nothing; a module whose entries have all
    been typed leaves the list, so that it is held to the rule from then on."""
    names = set(_module_names())
    assert [m for m in UNTYPED if m not in names] == []
    typed = [m for m in UNTYPED
             if not any("gives no type" in p for where, obj in _with_methods(_import(m))
                        for p in _form_problems(where, obj, True))]
    assert typed == [], f"every entry of {typed} names a type now: remove them from UNTYPED"


def test_every_misread_entry_is_still_misread():
    """An entry of ``MISREAD`` whose docstring was fixed leaves it, so that the check
    covers that docstring again."""
    fixed = []
    for qualname in MISREAD:
        modname, name = qualname.rsplit(".", 1)
        obj = getattr(_import(modname), name)
        if not _form_problems(qualname, obj, False, misread=False):
            fixed.append(qualname)
    assert fixed == [], f"{fixed} read correctly now: remove them from MISREAD"


@pytest.mark.parametrize("modname", _module_names())
def test_parameter_entries_name_real_parameters_with_a_type(modname):
    problems = [p for where, obj in _with_methods(_import(modname))
                for p in _form_problems(where, obj, modname not in UNTYPED)]
    assert not problems, "\n".join(problems)


API_PAGE = Path(__file__).resolve().parents[1] / "docs" / "api.rst"

#: Objects on the API page whose docstrings do not pass yet, with the reason; an entry is
#: removed once its docstring is fixed (its module then belongs in ``COVERED``).
API_PENDING: dict[str, str] = {}


def _api_entries(text: str) -> list[str]:
    """The full names of the autosummary entries of an API page, each read under the
    ``.. currentmodule::`` in force where it stands."""
    current, names = "", []
    for line in text.splitlines():
        m = re.match(r"\.\. currentmodule:: (\S+)\s*$", line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"^   (~?[\w.]+)$", line)
        if m:
            names.append(f"{current}.{m.group(1).lstrip('~')}")
    return names


def _resolve(fullname: str):
    """The object a dotted name denotes, importing its module (``a.b.c``: ``a.b`` then
    ``c``, or ``a`` then ``b.c``)."""
    parts = fullname.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = _import(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for part in parts[cut:]:
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return obj
    raise AssertionError(f"{fullname} does not resolve")


def _api_problems(fullname: str) -> list[str]:
    obj = _resolve(fullname)
    found = _problems(fullname, obj) + _form_problems(fullname, obj, True, misread=False)
    return found + _rst_problems(fullname, obj)


def test_every_object_on_the_api_page_resolves_and_has_a_complete_docstring():
    """What the API page renders is held to this file's rules whichever module it lives in
    (a facade function defined in a package ``__init__`` is in no ``COVERED`` module), and a
    misspelt entry fails here in seconds rather than in the Sphinx build."""
    names = _api_entries(API_PAGE.read_text())
    assert len(names) >= 40, names  # the page was read, not an empty match
    problems = [p for n in names if n not in API_PENDING for p in _api_problems(n)]
    assert not problems, "\n".join(problems)
    assert [n for n in API_PENDING if n not in names] == []
    fixed = [n for n in API_PENDING if not _api_problems(n)]
    assert fixed == [], f"{fixed} pass now: remove them from API_PENDING"


def test_api_entries_are_read_under_their_current_module():
    text = ("A\n\n.. currentmodule:: workbench\n\n.. autosummary::\n   :toctree: generated\n"
            "\n   tl.embed\n   Study\n\n.. currentmodule:: workbench.models\n\n"
            ".. autosummary::\n\n   ~additivity.additivity_test\n")
    assert _api_entries(text) == ["workbench.tl.embed", "workbench.Study",
                                  "workbench.models.additivity.additivity_test"]
    assert _resolve("workbench.models.additivity.additivity_test").__name__ == \
        "additivity_test"
    with pytest.raises(AssertionError, match="does not resolve"):
        _resolve("workbench.tl.embedd")


def test_the_check_reads_sections_as_numpydoc_does():
    """The parser, not a substring search: a short underline or a missing name fails."""
    good = "Do it.\n\nParameters\n----------\nx : int\n    The x.\n"
    assert _documented(_parsed(good, "good")) == {"x"}
    with pytest.raises(AssertionError, match="underline"):
        _parsed(good.replace("----------", "---------"), "short")
    with pytest.raises(AssertionError, match="Unknown section"):
        _parsed(good.replace("Parameters\n----------", "Arguments\n---------"), "unknown")
    doc = _parsed("Do it.\n\nParameters\n----------\nx, y : int\n    Both.\n"
                  "*args\n    More.\n", "grouped")
    assert _documented(doc) == {"x", "y", "args"}
    assert not _parsed("Do it.\n\nx : int\n    The x.\n", "prose")["Parameters"]

    def plain(a):
        if a:
            return
        return None

    def value(a):
        def inner():
            return 1
        return inner

    def gen(a):
        yield a

    assert not _returns_something(plain)
    assert _returns_something(value) and _returns_something(gen)

    def typed(x, *, n=1, **kw):
        """Do it.

        Parameters
        ----------
        x : int
            The x.
        n : int
            How many.
        **kw
            More.
        """

    assert _form_problems("typed", typed, True) == []
    typed.__doc__ = typed.__doc__.replace("n : int", "n")
    assert "gives no type" in _form_problems("untyped", typed, True)[0]
    assert _form_problems("untyped", typed, False) == []
    typed.__doc__ = typed.__doc__.replace("    n\n", "    count : int\n")
    assert "does not have" in _form_problems("renamed", typed, False)[0]

    def marked(x):
        """Do it: see :func:`typed` and :class:`int`.

        Parameters
        ----------
        x : int
            The largest ``|x|``.

        See Also
        --------
        typed : Another.
        """

    assert _rst_problems("marked", marked) == []
    marked.__doc__ = marked.__doc__.replace("``|x|``", "|x|")
    assert "Undefined substitution" in _rst_problems("bare", marked)[0]
