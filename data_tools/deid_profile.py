"""Every attribute of PS3.15 Table E.1-1 gets its Basic Profile action, after dicognito.

dicognito replaces what identifies a patient with keyed, consistent values (names, IDs, UIDs,
dates shifted per patient, addresses, institution), but it acts on value representations and a
list of known attributes, not on the profile's table: free-text descriptions, comments,
device serial numbers, protocol names, overlay comments and hundreds more keep their values.
This module applies the table's action to each of them afterwards, recursively through
sequences:

* dates and times dicognito shifted (every DA and DT, a TM beside its DA): kept, as the
  Retain Longitudinal Temporal Information with Modified Dates option asks of every date and
  time in the table, so the intervals between a patient's acquisitions survive;
* X (and X/Z, X/D, X/Z/D, X/Z/U*: removal is always one of the allowed actions): removed;
* Z, D, Z/D, U: kept when dicognito already replaced the value (its pseudonyms are the
  "dummy values" the profile allows, its shifted dates those of the Retain Longitudinal
  Temporal Information with Modified Dates option, its UIDs keyed); otherwise Z empties the
  value, D puts a dummy value of the element's representation, U maps the UID with a keyed
  hash (the same UID gives the same new UID with the same key). A listed sequence is emptied
  (Z) or becomes one empty item (D: its items may hold free text the table does not list);
  the items of sequences the table does not list are de-identified like the dataset.

The table is the transcription of PS3.15 Table E.1-1 shipped by the ``dicom-anonymizer``
package (its newest edition installed); it is read as data, its anonymizer is not used (it
has no keyed mapping or date shifting). Written here because neither library applies the
whole table with keyed, reproducible replacements.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import pkgutil
from typing import Any

#: the table's categories in dicom-anonymizer and the action of each
_CATEGORIES = {
    "X_TAGS": "X", "Z_TAGS": "Z", "D_TAGS": "D", "U_TAGS": "U", "Z_D_TAGS": "Z/D", "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D", "X_Z_D_TAGS": "X/Z/D", "X_Z_U_STAR_TAGS": "X/Z/U*",
}
#: value representations whose dummy is text, bytes or a number
_TEXT_DUMMY = {"AE": "REMOVED", "CS": "REMOVED", "LO": "REMOVED", "SH": "REMOVED", "ST": "REMOVED",
               "LT": "REMOVED", "UT": "REMOVED", "UC": "REMOVED", "PN": "REMOVED", "UR": "REMOVED",
               "DA": "19000101", "TM": "000000", "DT": "19000101000000", "AS": "000D", "IS": "0", "DS": "0"}
_BINARY = {"OB", "OW", "OD", "OF", "OL", "OV", "UN"}
#: dates and times: the option's column of the table says modify ("C") for every one of them
_TEMPORAL = {"DA", "DT", "TM"}


@functools.lru_cache(maxsize=1)
def profile_table() -> tuple[str, dict[int, str], tuple[tuple[int, int, int, int, str], ...]]:
    """``(edition, {tag: action}, ((group, element, group mask, element mask, action), ...))``:
    the table of PS3.15 E.1-1 as ``dicom-anonymizer`` transcribes it, newest edition."""
    import dicomanonymizer.dicom_anonymization_databases as databases

    editions = sorted(m.name for m in pkgutil.iter_modules(databases.__path__) if m.name.startswith("dicomfields_"))
    if not editions:
        raise RuntimeError("dicom-anonymizer ships no PS3.15 table")
    module = pkgutil.resolve_name(f"{databases.__name__}.{editions[-1]}")
    exact: dict[int, str] = {}
    masked: list[tuple[int, int, int, int, str]] = []
    for category, action in _CATEGORIES.items():
        for entry in getattr(module, category):
            if len(entry) == 4:
                masked.append((*entry, action))
            else:
                exact[(entry[0] << 16) | entry[1]] = action
    return editions[-1].removeprefix("dicomfields_"), exact, tuple(masked)


def action_of(tag: int) -> str | None:
    """The table's action for ``tag`` (an int ``0xggggeeee``), or None when it is not listed."""
    _, exact, masked = profile_table()
    action = exact.get(int(tag))
    if action is not None:
        return action
    group, element = int(tag) >> 16, int(tag) & 0xFFFF
    for g, e, group_mask, element_mask, masked_action in masked:
        if group & group_mask == g and element & element_mask == e:
            return masked_action
    return None


def snapshot(ds) -> dict[tuple, Any]:
    """The values of every listed attribute, by path (tags and item numbers), before dicognito."""
    values: dict[tuple, Any] = {}

    def visit(dataset, path: tuple) -> None:
        for element in dataset:
            here = (*path, int(element.tag))
            if element.VR == "SQ":
                for number, item in enumerate(element.value or []):
                    visit(item, (*here, number))
            elif action_of(element.tag) is not None:
                values[here] = _comparable(element.value)

    visit(ds, ())
    return values


def enforce(ds, before: dict[tuple, Any], uid_key: bytes) -> None:
    """Apply the table to ``ds`` in place (see the module doc); ``before`` from :func:`snapshot`
    of the same dataset before dicognito ran; ``uid_key`` keys the UID mapping."""

    def visit(dataset, path: tuple) -> None:
        for element in list(dataset):
            here = (*path, int(element.tag))
            action = action_of(element.tag)
            if element.VR in _TEMPORAL and here in before and _comparable(element.value) != before[here]:
                continue  # shifted by dicognito: what the Modified Dates option keeps, X or not
            if action is not None and action.startswith("X"):
                del dataset[element.tag]
                continue
            if element.VR == "SQ":
                if action == "Z":
                    element.value = []
                    continue
                if action is not None:  # D: a dummy sequence, one empty item (its items may hold free text)
                    from pydicom.dataset import Dataset

                    element.value = [Dataset()]
                    continue
                for number, item in enumerate(element.value or []):
                    visit(item, (*here, number))
                continue
            if action is None or _empty(element.value):
                continue
            if here in before and _comparable(element.value) != before[here]:
                continue  # dicognito replaced it: a keyed dummy, a shifted date, a new UID
            if action == "Z":
                element.value = b"" if element.VR in _BINARY else ("" if element.VR in _TEXT_DUMMY else None)
            elif action == "U" or element.VR == "UI":
                element.value = _keyed_uids(element.value, uid_key)
            else:
                element.value = _dummy(element.VR)

    visit(ds, ())


def _comparable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return hashlib.sha256(bytes(value)).hexdigest()
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return tuple(str(v) for v in value)
    return str(value)


def _empty(value: Any) -> bool:
    return value is None or (hasattr(value, "__len__") and len(value) == 0)


def _dummy(vr: str) -> Any:
    if vr in _TEXT_DUMMY:
        return _TEXT_DUMMY[vr]
    if vr in _BINARY:
        return b"\x00" * 8
    return 0


def _keyed_uids(value: Any, key: bytes) -> Any:
    """``2.25.<integer>``: the first 128 bits of HMAC-SHA256(key, uid), per PS3.5 B.2."""
    def one(uid: str) -> str:
        return "2.25." + str(int.from_bytes(hmac.new(key, str(uid).encode(), hashlib.sha256).digest()[:16], "big"))

    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [one(v) for v in value]
    return one(value)
