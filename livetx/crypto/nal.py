"""H.264 and H.265 slice headers: where the coded video of a NAL unit starts. Pure.

Common Encryption's 'cbcs' scheme (ISO/IEC 23001-7, as CMAF, ISO/IEC 23000-19, constrains it)
keeps each NAL unit's header and slice header in the clear: the protected range of a VCL NAL
unit starts on the first byte of video data after its slice header, so a decoder, or a secure
video path parsing headers outside protected memory, reads them without the key. A slice
header's length depends on its parameter sets (SPS, PPS) and varies from slice to slice, so it
is read here, as far as it goes: H.264 per ITU-T H.264 7.3.3, H.265 per ITU-T H.265 7.3.6.1.
The syntax is read from the RBSP (emulation prevention bytes taken out) and the length mapped
back to bytes of the NAL unit as stored; a header ending inside a byte (CAVLC H.264) keeps
that byte clear.

What is not supported raises ValueError naming it: H.264 slice data partitioning, MVC/SVC
slices and FMO slice groups; H.265 layers above 0 and the SCC, multilayer and 3D PPS
extensions. None of them comes out of the encoders livetx drives (libx264, libx265).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

EPB = b"\x00\x00\x03"  # emulation_prevention_three_byte after two zero bytes (H.264 7.4.1, H.265 7.4.2)
FIRST_READ = 512  # bytes of a NAL unit read for its slice header first (the whole unit if it runs longer)
MAX_LIST = 64  # bound on a syntax loop's count, so damaged data fails fast instead of looping long


_T = TypeVar("_T")


class _Short(ValueError):
    """The syntax read runs past the end of the bytes read."""


class Bits:
    """An MSB-first bit reader with the Exp-Golomb codes of H.264/H.265 (9.1)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._size = len(data) * 8
        self.pos = 0

    def _peek(self, n: int) -> int:
        end = self.pos + n
        if end > self._size:
            raise _Short("a truncated header")
        last = (end + 7) >> 3
        return (int.from_bytes(self._data[self.pos >> 3 : last], "big") >> ((last << 3) - end)) & ((1 << n) - 1)

    def u(self, n: int) -> int:
        """An unsigned n-bit field."""
        value = self._peek(n)
        self.pos += n
        return value

    def flag(self) -> bool:
        return self.u(1) == 1

    def ue(self) -> int:
        width = min(32, self._size - self.pos)
        ahead = self._peek(width)
        if not ahead:
            if width < 32:
                raise _Short("a truncated header")
            raise ValueError("an Exp-Golomb code longer than 32 bits")
        zeros = width - ahead.bit_length()
        self.pos += zeros + 1
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code % 2 else -(code // 2)


def _count(value: int, what: str) -> int:
    if value > MAX_LIST:
        raise ValueError(f"{what} of {value} is past what any stream uses")
    return value


def _log2_ceil(n: int) -> int:
    """Ceil(Log2(n)) for n >= 1: the bits of an index among n."""
    return (n - 1).bit_length()


def rbsp(nal: bytes, end: int) -> tuple[bytes, list[int]]:
    """The first `end` bytes of a NAL unit without their emulation prevention bytes, and the
    indexes (in `nal`) of the bytes taken out."""
    pieces, removed, start = [], [], 0
    at = nal.find(EPB, 0, end)
    while at >= 0:
        pieces.append(nal[start : at + 2])
        removed.append(at + 2)
        start = at + 3
        at = nal.find(EPB, start, end)
    pieces.append(nal[start:end])
    return b"".join(pieces), removed


def stored_size(rbsp_bytes: int, removed: Sequence[int]) -> int:
    """The bytes of the NAL unit as stored that hold its first `rbsp_bytes` RBSP bytes."""
    size = rbsp_bytes
    for index in removed:
        if index >= size:
            break
        size += 1
    return size


def header_bytes(nal: bytes, read: Callable[[Bits], int]) -> int:
    """Bytes of `nal` (as stored) up to the end of the header `read` parses (returning its end
    in bits from the start of the NAL unit), rounded up to a whole byte."""
    for end in dict.fromkeys((min(len(nal), FIRST_READ), len(nal))):
        data, removed = rbsp(nal, end)
        try:
            bits = read(Bits(data))
        except _Short:
            continue
        return stored_size((bits + 7) // 8, removed)
    raise ValueError("a slice header runs past the end of its NAL unit")


class SliceHeaders(Protocol):
    """The parameter sets of one stream seen so far, and the slice headers they define."""

    def clear_size(self, nal: bytes) -> int | None:
        """For a VCL NAL unit, the bytes of its NAL unit header and slice header; None for any
        other NAL unit (a parameter set among them is learnt for the slices after it)."""
        ...


def slice_headers(codec: str, parameter_sets: Iterable[bytes]) -> SliceHeaders:
    """A reader for `codec` ("h264" or "h265") knowing the decoder configuration's parameter sets."""
    reader: Avc | Hevc
    if codec == "h264":
        reader = Avc()
    elif codec == "h265":
        reader = Hevc()
    else:
        raise ValueError(f"no NAL unit syntax for {codec!r}")
    for nal in parameter_sets:
        reader.clear_size(nal)
    return reader


# ---- H.264 -----------------------------------------------------------------------------

AVC_SLICE, AVC_PARTITION_A, AVC_PARTITION_C, AVC_IDR, AVC_SPS, AVC_PPS = 1, 2, 4, 5, 7, 8
AVC_EXTENSIONS = (20, 21)  # coded slice extension (SVC, MVC), depth view component
AVC_CHROMA_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})  # 7.3.2.1.1
AVC_P, AVC_B, AVC_I, AVC_SP, AVC_SI = range(5)  # slice_type % 5 (Table 7-6)


@dataclass(frozen=True)
class AvcSps:
    """The fields of an H.264 SPS (7.3.2.1.1) that a slice header's length depends on."""

    separate_colour_plane: bool
    chroma_array_type: int
    frame_num_bits: int
    frame_mbs_only: bool
    poc_type: int
    poc_lsb_bits: int
    delta_pic_order_always_zero: bool


@dataclass(frozen=True)
class AvcPps:
    """The fields of an H.264 PPS (7.3.2.2) that a slice header's length depends on."""

    sps_id: int
    cabac: bool
    bottom_field_pic_order: bool
    ref_idx_default: tuple[int, int]  # num_ref_idx_l0/l1_default_active_minus1
    weighted_pred: bool
    weighted_bipred_idc: int
    deblocking_control: bool
    redundant_pic_cnt: bool


def avc_sps(bits: Bits) -> tuple[int, AvcSps]:
    bits.u(8)  # NAL unit header
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level_idc
    sps_id = bits.ue()
    chroma_format_idc, separate = 1, False
    if profile in AVC_CHROMA_PROFILES:
        chroma_format_idc = bits.ue()
        separate = chroma_format_idc == 3 and bits.flag()
        bits.ue(), bits.ue(), bits.u(1)  # bit depths, qpprime_y_zero_transform_bypass_flag
        if bits.flag():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if bits.flag():
                    _avc_scaling_list(bits, 16 if i < 6 else 64)
    frame_num_bits = bits.ue() + 4
    poc_type, poc_lsb_bits, always_zero = bits.ue(), 0, False
    if poc_type == 0:
        poc_lsb_bits = bits.ue() + 4
    elif poc_type == 1:
        always_zero = bits.flag()
        bits.se(), bits.se()
        for _ in range(_count(bits.ue(), "num_ref_frames_in_pic_order_cnt_cycle")):
            bits.se()
    bits.ue(), bits.u(1), bits.ue(), bits.ue()  # max_num_ref_frames, gaps, picture size
    frame_mbs_only = bits.flag()
    chroma = 0 if separate else chroma_format_idc
    return sps_id, AvcSps(separate, chroma, frame_num_bits, frame_mbs_only, poc_type, poc_lsb_bits, always_zero)


def _avc_scaling_list(bits: Bits, size: int) -> None:
    last = following = 8
    for _ in range(size):
        if following:
            following = (last + bits.se() + 256) % 256
        last = following or last


def avc_pps(bits: Bits) -> tuple[int, AvcPps]:
    bits.u(8)
    pps_id, sps_id = bits.ue(), bits.ue()
    cabac, bottom_field = bits.flag(), bits.flag()
    if bits.ue():
        raise ValueError("H.264 slice groups (FMO) are not supported")
    ref_idx = (bits.ue(), bits.ue())
    weighted_pred, weighted_bipred = bits.flag(), bits.u(2)
    bits.se(), bits.se(), bits.se()  # pic_init_qp/qs, chroma_qp_index_offset
    deblocking = bits.flag()
    bits.u(1)  # constrained_intra_pred_flag
    redundant = bits.flag()
    return pps_id, AvcPps(sps_id, cabac, bottom_field, ref_idx, weighted_pred, weighted_bipred, deblocking, redundant)


class Avc:
    """H.264 slice headers (7.3.3) of one stream."""

    def __init__(self) -> None:
        self.sps: dict[int, AvcSps] = {}
        self.pps: dict[int, AvcPps] = {}

    def clear_size(self, nal: bytes) -> int | None:
        if not nal:
            return None
        kind = nal[0] & 0x1F
        if kind == AVC_SPS:
            sps_id, sps = avc_sps(Bits(rbsp(nal, len(nal))[0]))
            self.sps[sps_id] = sps
        elif kind == AVC_PPS:
            pps_id, pps = avc_pps(Bits(rbsp(nal, len(nal))[0]))
            self.pps[pps_id] = pps
        elif AVC_PARTITION_A <= kind <= AVC_PARTITION_C or kind in AVC_EXTENSIONS:
            raise ValueError(f"H.264 NAL units of type {kind} (data partitions, SVC/MVC) are not supported")
        elif kind in (AVC_SLICE, AVC_IDR):
            return header_bytes(nal, self._slice_header)
        return None

    def _slice_header(self, bits: Bits) -> int:
        bits.u(1)
        ref_idc, kind = bits.u(2), bits.u(5)
        bits.ue()  # first_mb_in_slice
        slice_type = bits.ue() % 5
        pps = _known(self.pps, bits.ue(), "H.264 PPS")
        sps = _known(self.sps, pps.sps_id, "H.264 SPS")
        bits.u((2 if sps.separate_colour_plane else 0) + sps.frame_num_bits)  # colour_plane_id, frame_num
        field_pic = not sps.frame_mbs_only and bits.flag()
        if field_pic:
            bits.u(1)  # bottom_field_flag
        if kind == AVC_IDR:
            bits.ue()  # idr_pic_id
        poc_deltas = sps.poc_type == 1 and not sps.delta_pic_order_always_zero
        if sps.poc_type == 0:
            bits.u(sps.poc_lsb_bits)  # pic_order_cnt_lsb
        elif poc_deltas:
            bits.se()  # delta_pic_order_cnt[0]
        if (sps.poc_type == 0 or poc_deltas) and pps.bottom_field_pic_order and not field_pic:
            bits.se()  # delta_pic_order_cnt_bottom or delta_pic_order_cnt[1]
        if pps.redundant_pic_cnt:
            bits.ue()
        self._references(bits, slice_type, sps, pps)
        if ref_idc:
            _avc_ref_pic_marking(bits, kind == AVC_IDR)
        if pps.cabac and slice_type not in (AVC_I, AVC_SI):
            bits.ue()  # cabac_init_idc
        bits.se()  # slice_qp_delta
        if slice_type == AVC_SP:
            bits.u(1)  # sp_for_switch_flag
        if slice_type in (AVC_SP, AVC_SI):
            bits.se()  # slice_qs_delta
        if pps.deblocking_control and bits.ue() != 1:
            bits.se(), bits.se()  # slice_alpha_c0_offset_div2, slice_beta_offset_div2
        return bits.pos

    @staticmethod
    def _references(bits: Bits, slice_type: int, sps: AvcSps, pps: AvcPps) -> None:
        """direct_spatial_mv_pred_flag to pred_weight_table()."""
        if slice_type == AVC_B:
            bits.u(1)  # direct_spatial_mv_pred_flag
        l0, l1 = pps.ref_idx_default
        if slice_type in (AVC_P, AVC_SP, AVC_B) and bits.flag():  # num_ref_idx_active_override_flag
            l0 = bits.ue()
            l1 = bits.ue() if slice_type == AVC_B else l1
        lists = {AVC_P: 1, AVC_SP: 1, AVC_B: 2}.get(slice_type, 0)
        for _ in range(lists):  # ref_pic_list_modification() (7.3.3.1)
            if bits.flag():
                _avc_list_modification(bits)
        weighted = (pps.weighted_pred and slice_type in (AVC_P, AVC_SP)) or (pps.weighted_bipred_idc == 1 and slice_type == AVC_B)
        if weighted:  # pred_weight_table() (7.3.3.2)
            bits.ue()
            if sps.chroma_array_type:
                bits.ue()
            for count in (l0, l1)[:lists]:
                _avc_weights(bits, count + 1, sps.chroma_array_type != 0)


def _avc_list_modification(bits: Bits) -> None:
    for _ in range(MAX_LIST):
        idc = bits.ue()  # modification_of_pic_nums_idc
        if idc == 3:
            return
        if idc > 3:
            raise ValueError(f"modification_of_pic_nums_idc {idc}")
        bits.ue()  # abs_diff_pic_num_minus1 or long_term_pic_num
    raise ValueError("a reference list modification that does not end")


def _avc_weights(bits: Bits, count: int, chroma: bool) -> None:
    for _ in range(_count(count, "num_ref_idx_active")):
        if bits.flag():
            bits.se(), bits.se()
        if chroma and bits.flag():
            bits.se(), bits.se(), bits.se(), bits.se()


def _avc_ref_pic_marking(bits: Bits, idr: bool) -> None:
    """dec_ref_pic_marking() (7.3.3.3)."""
    if idr:
        bits.u(2)  # no_output_of_prior_pics_flag, long_term_reference_flag
        return
    if not bits.flag():  # adaptive_ref_pic_marking_mode_flag
        return
    for _ in range(MAX_LIST):
        operation = bits.ue()  # memory_management_control_operation
        if operation == 0:
            return
        if operation > 6:
            raise ValueError(f"memory_management_control_operation {operation}")
        fields = {1: 1, 2: 1, 3: 2, 4: 1, 5: 0, 6: 1}[operation]
        for _ in range(fields):
            bits.ue()
    raise ValueError("a reference picture marking that does not end")


def _known(table: Mapping[int, _T] | Sequence[_T], key: int, what: str) -> _T:
    try:
        return table[key]
    except (KeyError, IndexError):
        raise ValueError(f"a slice refers to {what} {key}, which the stream has not carried") from None


# ---- H.265 -----------------------------------------------------------------------------

HEVC_SPS, HEVC_PPS = 33, 34
HEVC_SLICES = frozenset(range(10)) | frozenset(range(16, 22))  # Table 7-1: VCL types not reserved
HEVC_IRAP = range(16, 24)  # BLA_W_LP .. RSV_IRAP_VCL23
HEVC_IDR = (19, 20)  # IDR_W_RADL, IDR_N_LP
HEVC_B, HEVC_P, HEVC_I = range(3)  # slice_type (Table 7-7)


@dataclass(frozen=True)
class Rps:
    """A short-term reference picture set (7.3.7, 7.4.8): (delta POC, used by the current
    picture) of the pictures before (s0) and after (s1) it, nearest first."""

    s0: tuple[tuple[int, bool], ...]
    s1: tuple[tuple[int, bool], ...]

    @property
    def used(self) -> int:
        return sum(used for _, used in self.s0 + self.s1)


def hevc_rps(bits: Bits, sets: Sequence[Rps], in_slice: bool) -> Rps:
    """st_ref_pic_set(len(sets)): in an SPS, `sets` are the ones before it; in a slice header,
    all the SPS's."""
    if sets and bits.flag():  # inter_ref_pic_set_prediction_flag
        return _predicted_rps(bits, sets, in_slice)
    negatives, positives = _count(bits.ue(), "num_negative_pics"), _count(bits.ue(), "num_positive_pics")
    s0, s1, poc = [], [], 0
    for _ in range(negatives):
        poc -= bits.ue() + 1
        s0.append((poc, bits.flag()))
    poc = 0
    for _ in range(positives):
        poc += bits.ue() + 1
        s1.append((poc, bits.flag()))
    return Rps(tuple(s0), tuple(s1))


def _predicted_rps(bits: Bits, sets: Sequence[Rps], in_slice: bool) -> Rps:
    """An RPS predicted from an earlier one (7-61, 7-62)."""
    back = bits.ue() + 1 if in_slice else 1  # delta_idx_minus1 + 1
    if back > len(sets):
        raise ValueError("a reference picture set predicted from one that does not exist")
    ref = sets[len(sets) - back]
    sign, magnitude = bits.u(1), bits.ue() + 1
    delta = -magnitude if sign else magnitude
    used, use = [], []  # used_by_curr_pic_flag, use_delta_flag (1 when absent) of ref's pictures and of ref itself
    for _ in range(len(ref.s0) + len(ref.s1) + 1):
        used.append(bits.flag())
        use.append(used[-1] or bits.flag())
    # every candidate as (index in the flags, delta POC), in the order 7-61 takes them for s0
    n0 = len(ref.s0)
    candidates = [(n0 + j, ref.s1[j][0] + delta) for j in reversed(range(len(ref.s1)))]
    candidates += [(n0 + len(ref.s1), delta)] + [(j, ref.s0[j][0] + delta) for j in range(n0)]
    s0 = tuple((poc, used[k]) for k, poc in candidates if poc < 0 and use[k])
    # and in the order 7-62 takes them for s1
    candidates = [(j, ref.s0[j][0] + delta) for j in reversed(range(n0))]
    candidates += [(n0 + len(ref.s1), delta)] + [(n0 + j, ref.s1[j][0] + delta) for j in range(len(ref.s1))]
    s1 = tuple((poc, used[k]) for k, poc in candidates if poc > 0 and use[k])
    return Rps(s0, s1)


@dataclass(frozen=True)
class HevcSps:
    """The fields of an H.265 SPS (7.3.2.2.1) that a slice segment header's length depends on."""

    separate_colour_plane: bool
    chroma_array_type: int
    poc_lsb_bits: int
    rps: tuple[Rps, ...]
    long_term: bool  # long_term_ref_pics_present_flag
    long_term_used: tuple[bool, ...]  # used_by_curr_pic_lt_sps_flag of each long-term picture the SPS lists
    temporal_mvp: bool
    sao: bool
    address_bits: int  # of slice_segment_address: Ceil(Log2(PicSizeInCtbsY))


@dataclass(frozen=True)
class HevcPps:
    """The fields of an H.265 PPS (7.3.2.3.1) that a slice segment header's length depends on."""

    sps_id: int
    dependent_slices: bool
    output_flag: bool
    extra_bits: int
    cabac_init: bool
    ref_idx_default: tuple[int, int]  # num_ref_idx_l0/l1_default_active_minus1
    slice_chroma_qp_offsets: bool
    weighted_pred: bool
    weighted_bipred: bool
    entry_points: bool  # tiles_enabled_flag or entropy_coding_sync_enabled_flag
    loop_filter_across_slices: bool
    deblocking_override: bool
    deblocking_disabled: bool
    lists_modification: bool
    header_extension: bool
    chroma_qp_offset_list: bool


def hevc_sps(bits: Bits) -> tuple[int, HevcSps]:
    bits.u(16 + 4)  # NAL unit header, sps_video_parameter_set_id
    sub_layers = bits.u(3)  # sps_max_sub_layers_minus1
    bits.u(1)
    _profile_tier_level(bits, sub_layers)
    sps_id, chroma_format_idc = bits.ue(), bits.ue()
    separate = chroma_format_idc == 3 and bits.flag()
    width, height = bits.ue(), bits.ue()
    if bits.flag():  # conformance_window_flag
        bits.ue(), bits.ue(), bits.ue(), bits.ue()
    bits.ue(), bits.ue()  # bit depths
    poc_lsb_bits = bits.ue() + 4
    for _ in range(sub_layers + 1 if bits.flag() else 1):  # sub-layer ordering info
        bits.ue(), bits.ue(), bits.ue()
    ctb_log2 = bits.ue() + 3
    ctb_log2 += bits.ue()
    bits.ue(), bits.ue(), bits.ue(), bits.ue()  # transform block sizes, hierarchy depths
    if bits.flag() and bits.flag():  # scaling_list_enabled_flag, sps_scaling_list_data_present_flag
        _hevc_scaling_lists(bits)
    bits.u(1)  # amp_enabled_flag
    sao = bits.flag()
    if bits.flag():  # pcm_enabled_flag
        bits.u(8), bits.ue(), bits.ue(), bits.u(1)
    sets: list[Rps] = []
    for _ in range(_count(bits.ue(), "num_short_term_ref_pic_sets")):
        sets.append(hevc_rps(bits, sets, in_slice=False))
    long_term, long_term_used = bits.flag(), []
    if long_term:
        for _ in range(_count(bits.ue(), "num_long_term_ref_pics_sps")):
            bits.u(poc_lsb_bits)
            long_term_used.append(bits.flag())
    temporal_mvp = bits.flag()
    ctb = 1 << ctb_log2
    ctbs = -(-width // ctb) * -(-height // ctb)
    chroma = 0 if separate else chroma_format_idc
    fields = HevcSps(separate, chroma, poc_lsb_bits, tuple(sets), long_term, tuple(long_term_used), temporal_mvp, sao, _log2_ceil(ctbs))
    return sps_id, fields


def _profile_tier_level(bits: Bits, sub_layers: int) -> None:
    """profile_tier_level(1, sps_max_sub_layers_minus1) (7.3.3)."""
    bits.u(96)  # general profile (88 bits) and level_idc
    present = [(bits.flag(), bits.flag()) for _ in range(sub_layers)]
    if sub_layers:
        bits.u(2 * (8 - sub_layers))  # reserved_zero_2bits
    for profile, level in present:
        bits.u(88 * profile + 8 * level)


def _hevc_scaling_lists(bits: Bits) -> None:
    """scaling_list_data() (7.3.4)."""
    for size_id in range(4):
        for _ in range(0, 6, 3 if size_id == 3 else 1):
            if not bits.flag():  # scaling_list_pred_mode_flag
                bits.ue()  # scaling_list_pred_matrix_id_delta
                continue
            if size_id > 1:
                bits.se()  # scaling_list_dc_coef_minus8
            for _ in range(min(64, 1 << (4 + (size_id << 1)))):
                bits.se()


def hevc_pps(bits: Bits) -> tuple[int, HevcPps]:
    bits.u(16)
    pps_id, sps_id = bits.ue(), bits.ue()
    dependent, output_flag, extra_bits = bits.flag(), bits.flag(), bits.u(3)
    bits.u(1)  # sign_data_hiding_enabled_flag
    cabac_init = bits.flag()
    ref_idx = (bits.ue(), bits.ue())
    bits.se(), bits.u(1)  # init_qp_minus26, constrained_intra_pred_flag
    transform_skip = bits.flag()
    if bits.flag():  # cu_qp_delta_enabled_flag
        bits.ue()
    bits.se(), bits.se()  # pps_cb/cr_qp_offset
    chroma_offsets, weighted_pred, weighted_bipred = bits.flag(), bits.flag(), bits.flag()
    bits.u(1)  # transquant_bypass_enabled_flag
    tiles, wpp = bits.flag(), bits.flag()
    if tiles:
        columns, rows = _count(bits.ue(), "num_tile_columns_minus1"), _count(bits.ue(), "num_tile_rows_minus1")
        if not bits.flag():  # uniform_spacing_flag
            for _ in range(columns + rows):
                bits.ue()
        bits.u(1)  # loop_filter_across_tiles_enabled_flag
    across_slices = bits.flag()
    override = disabled = False
    if bits.flag():  # deblocking_filter_control_present_flag
        override, disabled = bits.flag(), bits.flag()
        if not disabled:
            bits.se(), bits.se()
    if bits.flag():  # pps_scaling_list_data_present_flag
        _hevc_scaling_lists(bits)
    lists_modification = bits.flag()
    bits.ue()  # log2_parallel_merge_level_minus2
    header_extension = bits.flag()
    chroma_qp_offset_list = bits.flag() and _pps_range_extension(bits, transform_skip)
    return pps_id, HevcPps(
        sps_id, dependent, output_flag, extra_bits, cabac_init, ref_idx, chroma_offsets, weighted_pred, weighted_bipred,
        tiles or wpp, across_slices, override, disabled, lists_modification, header_extension, chroma_qp_offset_list,
    )  # fmt: skip


def _pps_range_extension(bits: Bits, transform_skip: bool) -> bool:
    """The PPS extension flags and the range extension (7.3.2.3.2) as far as it matters:
    chroma_qp_offset_list_enabled_flag."""
    range_extension, multilayer, three_d, scc = bits.flag(), bits.flag(), bits.flag(), bits.flag()
    if multilayer or three_d or scc:
        raise ValueError("H.265 multilayer, 3D and SCC extensions are not supported")
    if not range_extension:
        return False
    bits.u(4)  # pps_extension_4bits
    if transform_skip:
        bits.ue()  # log2_max_transform_skip_block_size_minus2
    bits.u(1)  # cross_component_prediction_enabled_flag
    return bits.flag()


class Hevc:
    """H.265 slice segment headers (7.3.6.1) of one stream."""

    def __init__(self) -> None:
        self.sps: dict[int, HevcSps] = {}
        self.pps: dict[int, HevcPps] = {}

    def clear_size(self, nal: bytes) -> int | None:
        if len(nal) < 2:
            return None
        kind = (nal[0] >> 1) & 0x3F
        if kind == HEVC_SPS:
            sps_id, sps = hevc_sps(Bits(rbsp(nal, len(nal))[0]))
            self.sps[sps_id] = sps
        elif kind == HEVC_PPS:
            pps_id, pps = hevc_pps(Bits(rbsp(nal, len(nal))[0]))
            self.pps[pps_id] = pps
        elif kind in HEVC_SLICES:
            return header_bytes(nal, self._slice_header)
        elif kind < 32:
            raise ValueError(f"H.265 NAL unit type {kind} is reserved")
        return None

    def _slice_header(self, bits: Bits) -> int:
        bits.u(1)
        kind, layer = bits.u(6), bits.u(6)
        bits.u(3)
        if layer:
            raise ValueError("H.265 layers above 0 are not supported")
        first = bits.flag()  # first_slice_segment_in_pic_flag
        if kind in HEVC_IRAP:
            bits.u(1)  # no_output_of_prior_pics_flag
        pps = _known(self.pps, bits.ue(), "H.265 PPS")
        sps = _known(self.sps, pps.sps_id, "H.265 SPS")
        dependent = False
        if not first:
            dependent = pps.dependent_slices and bits.flag()
            bits.u(sps.address_bits)  # slice_segment_address
        if not dependent:
            _independent_slice(bits, kind, sps, pps)
        if pps.entry_points:
            offsets = bits.ue()  # num_entry_point_offsets
            if offsets:
                bits.u(offsets * (bits.ue() + 1))  # entry_point_offset_minus1, offset_len_minus1 + 1 bits each
        if pps.header_extension:
            bits.u(8 * bits.ue())  # slice_segment_header_extension_length, its bytes
        if not bits.flag():  # byte_alignment(): alignment_bit_equal_to_one, then zero bits
            raise ValueError("a slice segment header without its alignment bit")
        bits.u(-bits.pos % 8)
        return bits.pos


def _independent_slice(bits: Bits, kind: int, sps: HevcSps, pps: HevcPps) -> None:
    """The fields of an independent slice segment header (7.3.6.1), slice_reserved_flag to
    slice_loop_filter_across_slices_enabled_flag."""
    bits.u(pps.extra_bits)
    slice_type = bits.ue()
    bits.u((1 if pps.output_flag else 0) + (2 if sps.separate_colour_plane else 0))  # pic_output_flag, colour_plane_id
    temporal_mvp, pictures = False, 0
    if kind not in HEVC_IDR:
        bits.u(sps.poc_lsb_bits)  # slice_pic_order_cnt_lsb
        pictures = _slice_references(bits, sps)
        temporal_mvp = sps.temporal_mvp and bits.flag()
    sao = False
    if sps.sao:
        luma = bits.flag()  # slice_sao_luma_flag
        sao = (sps.chroma_array_type != 0 and bits.flag()) or luma  # slice_sao_chroma_flag
    if slice_type in (HEVC_P, HEVC_B):
        _inter_slice(bits, slice_type, sps, pps, temporal_mvp, pictures)
    bits.se()  # slice_qp_delta
    if pps.slice_chroma_qp_offsets:
        bits.se(), bits.se()
    if pps.chroma_qp_offset_list:
        bits.u(1)  # cu_chroma_qp_offset_enabled_flag
    disabled = pps.deblocking_disabled
    if pps.deblocking_override and bits.flag():  # deblocking_filter_override_flag
        disabled = bits.flag()
        if not disabled:
            bits.se(), bits.se()
    if pps.loop_filter_across_slices and (sao or not disabled):
        bits.u(1)


def _slice_references(bits: Bits, sps: HevcSps) -> int:
    """The short- and long-term reference pictures of a non-IDR slice; returns NumPicTotalCurr (7-55)."""
    if not bits.flag():  # short_term_ref_pic_set_sps_flag
        rps = hevc_rps(bits, sps.rps, in_slice=True)
    else:
        index = bits.u(_log2_ceil(len(sps.rps))) if len(sps.rps) > 1 else 0
        rps = _known(sps.rps, index, "short-term reference picture set")
    pictures = rps.used
    if sps.long_term:
        from_sps = bits.ue() if sps.long_term_used else 0  # num_long_term_sps
        for i in range(_count(from_sps + bits.ue(), "num_long_term_pics")):
            if i < from_sps:
                index = bits.u(_log2_ceil(len(sps.long_term_used))) if len(sps.long_term_used) > 1 else 0
                pictures += _known(sps.long_term_used, index, "long-term reference picture")
            else:
                bits.u(sps.poc_lsb_bits)  # poc_lsb_lt
                pictures += bits.flag()  # used_by_curr_pic_lt_flag
            if bits.flag():  # delta_poc_msb_present_flag
                bits.ue()
    return pictures


def _inter_slice(bits: Bits, slice_type: int, sps: HevcSps, pps: HevcPps, temporal_mvp: bool, pictures: int) -> None:
    """num_ref_idx_active_override_flag to five_minus_max_num_merge_cand (P and B slices)."""
    lists = 2 if slice_type == HEVC_B else 1
    l0, l1 = pps.ref_idx_default
    if bits.flag():  # num_ref_idx_active_override_flag
        l0 = bits.ue()
        l1 = bits.ue() if lists == 2 else l1
    counts = (l0, l1)[:lists]
    if pps.lists_modification and pictures > 1:  # ref_pic_lists_modification() (7.3.6.2)
        for count in counts:
            if bits.flag():
                bits.u((count + 1) * _log2_ceil(pictures))
    if lists == 2:
        bits.u(1)  # mvd_l1_zero_flag
    if pps.cabac_init:
        bits.u(1)
    if temporal_mvp:
        from_l0 = lists == 1 or bits.flag()  # collocated_from_l0_flag
        if (l0 if from_l0 else l1) > 0:
            bits.ue()  # collocated_ref_idx
    if (pps.weighted_pred and lists == 1) or (pps.weighted_bipred and lists == 2):  # pred_weight_table() (7.3.6.3)
        bits.ue()
        if sps.chroma_array_type:
            bits.se()
        for count in counts:
            luma = [bits.flag() for _ in range(_count(count + 1, "num_ref_idx_active"))]
            chroma = [sps.chroma_array_type != 0 and bits.flag() for _ in luma]
            for has_luma, has_chroma in zip(luma, chroma, strict=True):
                for _ in range(2 * has_luma + 4 * has_chroma):
                    bits.se()
    bits.ue()  # five_minus_max_num_merge_cand
