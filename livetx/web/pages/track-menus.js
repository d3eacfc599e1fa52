// The audio and subtitle menus: one entry per EXT-X-MEDIA rendition hls.js found, each
// shown only when there is something to choose (subtitles: at least one, plus "off")
function trackMenus(hls) {
  const audio = document.getElementById("audio-menu");
  const subtitles = document.getElementById("subtitle-menu");
  const label = (t) => t.name + (t.lang && t.lang !== "und" && !t.name.includes(t.lang) ? " (" + t.lang + ")" : "");
  const fill = (menu, tracks, current, off) => {
    const options = tracks.map((t, i) => new Option(label(t), String(i), false, i === current));
    if (off) options.unshift(new Option("off", "-1", false, current < 0));
    menu.replaceChildren(...options);
    menu.parentElement.hidden = tracks.length < (off ? 1 : 2);
  };
  fill(audio, [], -1, false);  // (another source may have filled them)
  fill(subtitles, [], -1, true);
  hls.subtitleDisplay = true;
  hls.on(Hls.Events.AUDIO_TRACKS_UPDATED, () => fill(audio, hls.audioTracks, hls.audioTrack, false));
  hls.on(Hls.Events.AUDIO_TRACK_SWITCHED, (_, data) => { audio.value = String(data.id); });
  hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, () => fill(subtitles, hls.subtitleTracks, hls.subtitleTrack, true));
  hls.on(Hls.Events.SUBTITLE_TRACK_SWITCH, (_, data) => { subtitles.value = String(data.id); });
  audio.onchange = () => { hls.audioTrack = Number(audio.value); };
  subtitles.onchange = () => { hls.subtitleTrack = Number(subtitles.value); };
}
