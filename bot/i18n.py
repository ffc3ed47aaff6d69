"""Every sentence Hanul says to a member, in English and Korean, in one place.

`text(key, locale, **values)` picks the member's language (Discord locales such as `ko`, `en-US`, `en-GB`)
and falls back to English for a language or a key that has no translation yet.
"""

from __future__ import annotations

DEFAULT_LANGUAGE = "en"
LANGUAGES = ("en", "ko")

STRINGS: dict[str, dict[str, str]] = {
    # --- the life of one request -----------------------------------------------------------------
    "status.writing": {
        "en": "✍️ Writing a video prompt for {member}…",
        "ko": "✍️ {member}님의 영상 프롬프트를 쓰는 중…",
    },
    "status.queued": {
        "en": "⏳ **{title}** — in the queue (position {position}){eta}",
        "ko": "⏳ **{title}** — 대기 중 ({position}번째){eta}",
    },
    "status.starting": {"en": "⏳ **{title}** — starting…", "ko": "⏳ **{title}** — 시작하는 중…"},
    "status.rendering": {
        "en": "🎬 **{title}** — rendering {bar} {percent}%{eta}",
        "ko": "🎬 **{title}** — 렌더링 중 {bar} {percent}%{eta}",
    },
    "status.eta": {"en": " · about {seconds}s left", "ko": " · 약 {seconds}초 남음"},
    "status.done": {"en": "✅ **{title}** — done: {link}", "ko": "✅ **{title}** — 완성: {link}"},
    "status.failed": {"en": "❌ **{title}** — failed: {error}", "ko": "❌ **{title}** — 실패: {error}"},
    "status.waiting": {
        "en": "⚠️ **{title}** — I can't reach the video generator right now. Your request is saved; I'll keep "
        "trying and post the clip here when it's back.",
        "ko": "⚠️ **{title}** — 지금은 영상 생성기에 연결할 수 없습니다. 요청은 저장되어 있으니 계속 다시 시도하고, "
        "연결되면 여기에 영상을 올릴게요.",
    },
    "status.generator_broken": {
        "en": "⚠️ **{title}** — the video generator isn't working right now (its log says why; an admin needs to "
        "fix it). Your request is saved and will be made once it's running again.",
        "ko": "⚠️ **{title}** — 지금은 영상 생성기가 작동하지 않습니다 (원인은 로그에 있으며 관리자가 고쳐야 합니다). "
        "요청은 저장되어 있으며 생성기가 다시 작동하면 만들어집니다.",
    },
    "status.cancelled": {"en": "🛑 **{title}** — cancelled.", "ko": "🛑 **{title}** — 취소됨."},
    "thread.name": {"en": "🎬 {title}", "ko": "🎬 {title}"},
    "prompt.show": {
        "en": "**Prompt** ({how}):\n>>> {prompt}",
        "ko": "**프롬프트** ({how}):\n>>> {prompt}",
    },
    "prompt.by_llm": {"en": "written by the director", "ko": "디렉터가 작성"},
    "prompt.offline": {"en": "offline expander", "ko": "오프라인 확장기"},
    "prompt.as_typed": {"en": "as you typed it", "ko": "입력한 그대로"},
    "prompt.notice": {"en": "ℹ️ {notice}", "ko": "ℹ️ {notice}"},
    "refine.changed": {"en": "✏️ Changed: {summary}", "ko": "✏️ 바뀐 점: {summary}"},
    "extend.started": {
        "en": "➕ Extending **{title}**: {what}",
        "ko": "➕ **{title}** 이어서 만드는 중: {what}",
    },
    "result.caption": {
        "en": "🎞️ **{title}** · {seconds}s · {size} · seed `{seed}` · requested by {member}",
        "ko": "🎞️ **{title}** · {seconds}초 · {size} · 시드 `{seed}` · 요청: {member}",
    },
    "result.too_big": {
        "en": "⚠️ The clip is {size} but this channel accepts at most {limit}. Render a smaller version?",
        "ko": "⚠️ 영상 크기가 {size}인데 이 채널은 최대 {limit}까지 받습니다. 더 작은 버전으로 만들까요?",
    },
    "result.deleted": {"en": "🗑️ Clip deleted.", "ko": "🗑️ 영상을 삭제했습니다."},
    # --- edits: a refinement that changes only the look edits the clip (issue 18) ---------------------------
    "refine.edited": {
        "en": "🎨 This only changes the look, so I'm editing the clip and keeping its motion. Not what you meant? "
        "Press **Start over** under the new clip.",
        "ko": "🎨 분위기만 바뀌는 요청이라 움직임은 그대로 두고 영상을 수정할게요. 원하던 게 아니라면 새 영상 아래의 "
        "**처음부터 다시**를 누르세요.",
    },
    "refine.rendered": {
        "en": "🎬 This changes what happens, so I'm rendering the clip anew. To keep its motion instead, press "
        "**Keep the motion** under the new clip.",
        "ko": "🎬 장면의 내용이 바뀌는 요청이라 영상을 새로 렌더링할게요. 움직임을 유지하고 싶다면 새 영상 아래의 "
        "**움직임 유지**를 누르세요.",
    },
    "refine.switched_edit": {
        "en": "🎨 Editing the clip instead, keeping its motion.",
        "ko": "🎨 대신 움직임을 유지한 채 영상을 수정할게요.",
    },
    "refine.switched_render": {
        "en": "🎬 Rendering the clip anew instead.",
        "ko": "🎬 대신 영상을 새로 렌더링할게요.",
    },
    "result.made_edit": {"en": "🎨 edited, motion kept", "ko": "🎨 움직임 유지 수정"},
    "result.made_render": {"en": "🎬 rendered anew", "ko": "🎬 새로 렌더링"},
    "result.made_fallback": {
        "en": "🎬 rendered anew (the clip could not be edited)",
        "ko": "🎬 새로 렌더링 (영상을 수정할 수 없었어요)",
    },
    "button.keep_motion": {"en": "Keep the motion", "ko": "움직임 유지"},
    "button.start_over": {"en": "Start over", "ko": "처음부터 다시"},
    # --- characters (issue 18) ------------------------------------------------------------------------
    "character.created": {
        "en": "🧑‍🎨 **{name}** is ready{shared}. Use it with `/video character:{name}`.\n"
        "Description ({by}): {description}",
        "ko": "🧑‍🎨 **{name}** 캐릭터가 준비됐어요{shared}. `/video character:{name}`로 쓸 수 있어요.\n"
        "설명 ({by}): {description}",
    },
    "character.shared": {"en": " and shared with this server", "ko": " (이 서버와 공유됨)"},
    "character.by_director": {"en": "written by the director from the picture", "ko": "디렉터가 그림을 보고 작성"},
    "character.by_member": {"en": "your words", "ko": "직접 쓴 설명"},
    "character.list_title": {"en": "🧑‍🎨 Characters you can use here", "ko": "🧑‍🎨 여기서 쓸 수 있는 캐릭터"},
    "character.line": {
        "en": "`#{id}` **{name}**{whose} — {description}",
        "ko": "`#{id}` **{name}**{whose} — {description}",
    },
    "character.whose_shared": {"en": " (shared by {owner})", "ko": " ({owner}님이 공유)"},
    "character.whose_own_shared": {"en": " (yours, shared)", "ko": " (내 캐릭터, 공유 중)"},
    "character.empty": {
        "en": "No characters yet. Make one with `/character create name image:` (or `from_clip:`).",
        "ko": "아직 캐릭터가 없어요. `/character create name image:`(또는 `from_clip:`)로 만들어 보세요.",
    },
    "character.deleted": {"en": "🗑️ Character **{name}** deleted.", "ko": "🗑️ **{name}** 캐릭터를 삭제했어요."},
    "character.clip_choice": {"en": "#{id} {title}", "ko": "#{id} {title}"},
    "refusal.not_switchable": {
        "en": "Only a clip refined in its thread can switch between an edit and a new render.",
        "ko": "스레드에서 다듬은 영상만 수정과 새 렌더링 사이를 바꿀 수 있어요.",
    },
    "refusal.nothing_to_edit": {
        "en": "The clip this one changed is gone, so there is nothing to edit. Write the change in the thread again.",
        "ko": "수정할 원래 영상이 없어졌어요. 스레드에 바꿀 점을 다시 써 주세요.",
    },
    "refusal.not_supported": {
        "en": "The video generator doesn't offer that ({detail}); an admin may need to update it.",
        "ko": "영상 생성기가 그 기능을 지원하지 않아요 ({detail}). 관리자가 업데이트해야 할 수 있어요.",
    },
    "refusal.character_name": {
        "en": "A character needs a name of 1 to {limit} characters.",
        "ko": "캐릭터 이름은 1~{limit}자여야 해요.",
    },
    "refusal.character_source": {
        "en": "Give a character exactly one source: an `image`, or one of your clips with `from_clip`.",
        "ko": "캐릭터의 원본을 하나만 주세요: `image`(그림) 또는 `from_clip`(내 영상).",
    },
    "refusal.character_exists": {
        "en": "You already have a character called **{name}**. Pick another name, or `/character delete` it first.",
        "ko": "이미 **{name}** 캐릭터가 있어요. 다른 이름을 쓰거나 먼저 `/character delete`로 지워 주세요.",
    },
    "refusal.character_description": {
        "en": "The director can't look at pictures here, so describe your character in a few words with the "
        '`description` option (e.g. "a small white cat with a red scarf").',
        "ko": "디렉터가 여기서는 그림을 볼 수 없어요. `description` 옵션으로 캐릭터를 몇 단어로 설명해 주세요 "
        '(예: "빨간 목도리를 한 작은 흰 고양이").',
    },
    "refusal.character_clip": {
        "en": "Clip #{id} isn't one of your finished clips, so I can't make a character from it.",
        "ko": "#{id} 영상은 완성된 내 영상이 아니라서 캐릭터를 만들 수 없어요.",
    },
    "refusal.character_not_found": {
        "en": "I don't know a character called **{name}** that you can use here. See `/character list`.",
        "ko": "여기서 쓸 수 있는 **{name}** 캐릭터가 없어요. `/character list`를 확인해 보세요.",
    },
    "refusal.character_not_owner": {
        "en": "Only the member who made that character can delete it.",
        "ko": "캐릭터를 만든 멤버만 삭제할 수 있어요.",
    },
    "refusal.character_too_many": {
        "en": "A video can show at most {limit} characters.",
        "ko": "한 영상에는 캐릭터를 최대 {limit}개까지 넣을 수 있어요.",
    },
    "console.character_usage": {
        "en": "Characters: /character create <name> <image path | clip | #id> [description…] · /character list · "
        "/character delete <name> · /character use <name> <request…> (quote names with spaces)",
        "ko": "캐릭터: /character create <이름> <그림 경로 | clip | #번호> [설명…] · /character list · "
        "/character delete <이름> · /character use <이름> <요청…> (띄어쓰기가 있는 이름은 따옴표로)",
    },
    "console.edited": {
        "en": "🎨 Only the look changes: editing the clip, keeping its motion.",
        "ko": "🎨 분위기만 바뀌어서 움직임은 그대로 두고 영상을 수정해요.",
    },
    "console.rendered": {
        "en": "🎬 This changes what happens: rendering the clip anew.",
        "ko": "🎬 장면의 내용이 바뀌어서 영상을 새로 렌더링해요.",
    },
    "console.character_created": {
        "en": "🧑‍🎨 **{name}** is ready. Use it with `{use}`.\nDescription ({by}): {description}",
        "ko": "🧑‍🎨 **{name}** 캐릭터가 준비됐어요. `{use}`로 쓸 수 있어요.\n설명 ({by}): {description}",
    },
    "console.no_file": {"en": "I can't read the file {path}.", "ko": "{path} 파일을 읽을 수 없어요."},
    "console.saved": {"en": "🎞️ Saved: {path}", "ko": "🎞️ 저장됨: {path}"},
    # --- buttons and modals ----------------------------------------------------------------------
    "button.reroll": {"en": "Re-roll", "ko": "다시 뽑기"},
    "button.extend": {"en": "Extend", "ko": "이어 만들기"},
    "button.edit": {"en": "Edit prompt", "ko": "프롬프트 수정"},
    "button.delete": {"en": "Delete", "ko": "삭제"},
    "button.rerun": {"en": "Re-run #{id}", "ko": "#{id} 다시 실행"},
    "button.smaller": {"en": "Smaller version", "ko": "작은 버전"},
    "button.cancel": {"en": "Cancel", "ko": "취소"},
    "button.previous": {"en": "◀ Newer", "ko": "◀ 최근"},
    "button.next": {"en": "Older ▶", "ko": "이전 ▶"},
    "modal.extend.title": {"en": "Extend this video", "ko": "영상 이어 만들기"},
    "modal.extend.label": {"en": "What happens next?", "ko": "다음에 무슨 일이 일어나나요?"},
    "modal.edit.title": {"en": "Edit the prompt", "ko": "프롬프트 수정"},
    "modal.edit.label": {"en": "Prompt", "ko": "프롬프트"},
    "menu.extend": {"en": "Extend this video", "ko": "이 영상 이어 만들기"},
    # --- refusals: each says why and what to do --------------------------------------------------
    "refusal.channel": {
        "en": "Hanul isn't enabled in this channel. Try one of: {channels}.",
        "ko": "이 채널에서는 Hanul을 쓸 수 없습니다. 다음 채널에서 시도해 주세요: {channels}.",
    },
    "refusal.role": {
        "en": "You need one of these roles to make videos: {roles}. Ask a server admin.",
        "ko": "영상을 만들려면 다음 역할 중 하나가 필요합니다: {roles}. 서버 관리자에게 문의하세요.",
    },
    "refusal.queue_full": {
        "en": "You already have {count} videos in progress (the limit is {limit}). "
        "Wait for one to finish, or `/cancel` one.",
        "ko": "이미 {count}개의 영상을 만드는 중입니다 (최대 {limit}개). "
        "하나가 끝날 때까지 기다리거나 `/cancel`로 취소하세요.",
    },
    "refusal.cooldown": {
        "en": "Slow down a little: you can ask again in {seconds}s.",
        "ko": "조금만 천천히요: {seconds}초 후에 다시 요청할 수 있습니다.",
    },
    "refusal.quota": {
        "en": "You've used all {limit} videos for today. The quota resets at 00:00 UTC ({hours}h from now).",
        "ko": "오늘 사용할 수 있는 영상 {limit}개를 모두 썼습니다. 할당량은 UTC 00:00에 초기화됩니다 ({hours}시간 후).",
    },
    "refusal.not_owner": {
        "en": "Only the member who asked for this video (or an admin) can do that.",
        "ko": "이 영상을 요청한 멤버(또는 관리자)만 할 수 있습니다.",
    },
    "refusal.not_found": {
        "en": "I can't find that video any more (#{id}). It may have been deleted; start a new one with `/video`.",
        "ko": "영상(#{id})을 찾을 수 없습니다. 삭제되었을 수 있습니다. `/video`로 새로 만들어 주세요.",
    },
    "refusal.not_finished": {
        "en": "That video isn't finished yet. Wait for it, or `/cancel` it.",
        "ko": "아직 영상이 완성되지 않았습니다. 기다리거나 `/cancel`로 취소하세요.",
    },
    "refusal.already_finished": {
        "en": "That video has already finished, so there is nothing to cancel. Use its Delete button instead.",
        "ko": "이미 완성된 영상이라 취소할 것이 없습니다. 대신 삭제 버튼을 쓰세요.",
    },
    "refusal.nothing_to_cancel": {
        "en": "You have no videos in progress.",
        "ko": "진행 중인 영상이 없습니다.",
    },
    "refusal.seconds": {
        "en": "A clip can be 1 to {max} seconds long; you asked for {seconds}. Try a shorter one.",
        "ko": "영상 길이는 1~{max}초입니다. {seconds}초를 요청하셨어요. 더 짧게 시도해 주세요.",
    },
    "refusal.aspect": {
        "en": "Unknown aspect ratio {aspect!r}. Use one of: {choices}.",
        "ko": "알 수 없는 화면비 {aspect!r}입니다. 다음 중 하나를 쓰세요: {choices}.",
    },
    "refusal.seed": {
        "en": "The seed must be a whole number from 0 to {max}; you gave {seed}.",
        "ko": "시드는 0부터 {max}까지의 정수여야 합니다. 입력한 값: {seed}.",
    },
    "refusal.too_long": {
        "en": "That text is too long ({length} characters; the limit is {limit}). Please shorten it.",
        "ko": "글이 너무 깁니다 ({length}자, 최대 {limit}자). 줄여서 다시 보내 주세요.",
    },
    "refusal.bad_option": {
        "en": "I couldn't read the option `{option}`. Check its value and try again.",
        "ko": "`{option}` 옵션 값을 읽을 수 없습니다. 값을 확인하고 다시 시도해 주세요.",
    },
    "refusal.empty": {
        "en": "Tell me what to film, e.g. `/video a cat surfing at sunset`.",
        "ko": "무엇을 찍을지 알려 주세요. 예: `/video 노을 속에서 서핑하는 고양이`.",
    },
    "refusal.image": {
        "en": "The attachment must be a PNG, JPEG or WebP image under {limit}.",
        "ko": "첨부 파일은 {limit} 이하의 PNG, JPEG 또는 WebP 이미지여야 합니다.",
    },
    "refusal.director": {
        "en": "I can't make that video: {reason}. Try rephrasing your request.",
        "ko": "그 영상은 만들 수 없습니다: {reason}. 요청을 바꿔서 다시 시도해 주세요.",
    },
    "refusal.generator_busy": {
        "en": "The video generator is busy ({detail}). Try again in a minute.",
        "ko": "영상 생성기가 바쁩니다 ({detail}). 잠시 후 다시 시도해 주세요.",
    },
    "refusal.generator_down": {
        "en": "I can't reach the video generator right now. Try again later; an admin may need to check it.",
        "ko": "지금은 영상 생성기에 연결할 수 없습니다. 나중에 다시 시도해 주세요. 관리자 확인이 필요할 수 있습니다.",
    },
    "refusal.generator_rejected": {
        "en": "The generator refused this request: {detail}",
        "ko": "생성기가 이 요청을 거절했습니다: {detail}",
    },
    "refusal.generator_invalid": {
        "en": "Sorry, {detail}.",
        "ko": "영상 생성기가 쓸 수 없는 응답을 보냈습니다. 관리자가 확인해야 합니다: {detail}",
    },
    "refusal.not_a_clip": {
        "en": "That message isn't one of my clips, so there's nothing to extend.",
        "ko": "그 메시지는 제 영상이 아니라서 이어 만들 수 없습니다.",
    },
    "refusal.thread_owner": {
        "en": "This thread belongs to {owner}. Start your own with `/video`.",
        "ko": "이 스레드는 {owner}님의 것입니다. `/video`로 직접 시작해 보세요.",
    },
    "refusal.bad_setting": {"en": "{detail}", "ko": "{detail}"},
    # --- /history, /queue, /cancel, /settings, /help ---------------------------------------------
    "history.title": {"en": "🎞️ Videos by {member}", "ko": "🎞️ {member}님의 영상"},
    "history.empty": {
        "en": "No videos yet. Make one with `/video`.",
        "ko": "아직 영상이 없습니다. `/video`로 만들어 보세요.",
    },
    "history.line": {
        "en": "`#{id}` {when} · {status} · {title}{link}",
        "ko": "`#{id}` {when} · {status} · {title}{link}",
    },
    "history.page": {"en": "Page {page} of {pages}", "ko": "{pages}쪽 중 {page}쪽"},
    "queue.title": {"en": "⏳ Videos in progress", "ko": "⏳ 진행 중인 영상"},
    "queue.empty": {"en": "Nothing in progress.", "ko": "진행 중인 영상이 없습니다."},
    "queue.line": {
        "en": "`#{id}` {member} · {status} {progress}% · {title}",
        "ko": "`#{id}` {member} · {status} {progress}% · {title}",
    },
    "cancel.done": {"en": "🛑 Cancelled #{id} ({title}).", "ko": "🛑 #{id} ({title})을(를) 취소했습니다."},
    "settings.show": {
        "en": "**Your defaults**\nLength: {seconds}s · Aspect: {aspect} · Style: {style} · "
        "Prompt enhancement: {enhance} · Language: {language}",
        "ko": "**기본 설정**\n길이: {seconds}초 · 화면비: {aspect} · 스타일: {style} · "
        "프롬프트 보강: {enhance} · 언어: {language}",
    },
    "settings.saved": {"en": "Saved.", "ko": "저장했습니다."},
    "settings.none": {"en": "none", "ko": "없음"},
    "settings.auto": {"en": "your Discord language", "ko": "Discord 언어"},
    "settings.on": {"en": "on", "ko": "켜짐"},
    "settings.off": {"en": "off", "ko": "꺼짐"},
    "help.text": {
        "en": (
            "**Hanul** renders short videos on this server's own GPU.\n"
            "• `/video <prompt>` — make a clip (options: seconds, aspect, seed, negative, style, image, enhance)\n"
            '• Write in the clip\'s thread to refine it ("make it night time"); the video is rendered again\n'
            "• Reply to a clip, or right-click it → Apps → *Extend this video*, to continue it\n"
            "• Buttons under a clip: re-roll (new seed), extend, edit prompt, delete; after a refinement, "
            "*Keep the motion* (edit the clip) or *Start over* (render anew)\n"
            "• `/character create name image:` (or `from_clip:`) makes a reusable subject; "
            "`/video … character:` shows it; `/character list`, `/character delete`\n"
            "• `/history`, `/queue`, `/cancel`, `/settings` (your defaults), `/help`\n"
            "Limits: {queued} videos at once{cooldown}, {quota} a day."
        ),
        "ko": (
            "**Hanul**은 이 서버의 GPU로 짧은 영상을 만듭니다.\n"
            "• `/video <프롬프트>` — 영상 만들기 (옵션: seconds, aspect, seed, negative, style, image, enhance)\n"
            '• 영상 스레드에 글을 쓰면 프롬프트를 다듬어 다시 렌더링합니다 ("밤으로 바꿔 줘")\n'
            "• 영상에 답장하거나, 우클릭 → 앱 → *Extend this video*로 영상을 이어 만듭니다\n"
            "• 영상 아래 버튼: 다시 뽑기(새 시드), 이어 만들기, 프롬프트 수정, 삭제; 다듬은 영상에는 "
            "*움직임 유지*(영상 수정) 또는 *처음부터 다시*(새로 렌더링)\n"
            "• `/character create name image:`(또는 `from_clip:`)로 다시 쓸 캐릭터를 만들고 "
            "`/video … character:`로 등장시켜요; `/character list`, `/character delete`\n"
            "• `/history`, `/queue`, `/cancel`, `/settings` (기본 설정), `/help`\n"
            "제한: 동시에 {queued}개{cooldown}, 하루 {quota}개."
        ),
    },
    "quota.unlimited": {"en": "unlimited", "ko": "무제한"},
    "help.cooldown": {
        "en": ", a new one every {seconds}s (refining or extending your own clip never waits)",
        "ko": ", 새 영상은 {seconds}초에 하나 (내 영상 다듬기·이어 만들기는 기다리지 않음)",
    },
    "console.welcome": {
        "en": (
            "Hanul console — describe a video and press Enter.\n"
            "  type more to refine the last clip · /extend <what happens next> · /new <request> · "
            "/character · /help · /quit"
        ),
        "ko": (
            "Hanul 콘솔 — 만들 영상을 설명하고 Enter를 누르세요.\n"
            "  이어서 쓰면 마지막 영상을 다듬습니다 · /extend <다음 장면> · /new <요청> · /character · /help · /quit"
        ),
    },
    "console.need_clip": {
        "en": "There is no clip to extend yet: describe a video first.",
        "ko": "아직 이어 만들 영상이 없습니다. 먼저 영상을 설명해 주세요.",
    },
    "console.unknown": {
        "en": "Unknown command {command}. Try /help.",
        "ko": "알 수 없는 명령 {command}입니다. /help를 입력해 보세요.",
    },
    "console.too_big": {
        "en": "the clip is larger than {limit}, more than any Discord channel accepts",
        "ko": "영상이 {limit}보다 커서 어떤 Discord 채널에도 올릴 수 없습니다",
    },
    "console.resuming": {
        "en": "↻ Finishing **{title}**, left unfinished last time…",
        "ko": "↻ 지난번에 끝내지 못한 **{title}**을(를) 마저 만드는 중…",
    },
    "console.generator_broken": {
        "en": "⚠️ The video generator can't make videos: {problem}\n"
        "  Your request is saved and will be made the next time you start the console. Check GENERATOR_MODEL "
        "(`python -m generator models` lists the choices) and the log: {log}",
        "ko": "⚠️ 영상 생성기가 영상을 만들 수 없습니다: {problem}\n"
        "  요청은 저장되어 있으며 다음에 콘솔을 시작하면 만들어집니다. GENERATOR_MODEL "
        "(`python -m generator models`로 목록 확인)과 로그를 확인하세요: {log}",
    },
    "console.bye_saved": {
        "en": "Bye. The request in progress is saved; it will be finished the next time you start the console.",
        "ko": "안녕히 가세요. 진행 중인 요청은 저장되어 있으며 다음에 콘솔을 시작하면 마저 만들어집니다.",
    },
    "console.bye": {"en": "Bye.", "ko": "안녕히 가세요."},
    "error.unexpected": {
        "en": "Something went wrong on my side (#{id}). Nothing was lost; try again, and tell an admin if it repeats.",
        "ko": "내부 오류가 발생했습니다 (#{id}). 잃어버린 것은 없습니다. "
        "다시 시도하고, 반복되면 관리자에게 알려 주세요.",
    },
}

STATUS_WORDS: dict[str, dict[str, str]] = {
    "pending": {"en": "preparing", "ko": "준비 중"},
    "queued": {"en": "queued", "ko": "대기 중"},
    "rendering": {"en": "rendering", "ko": "렌더링 중"},
    "completed": {"en": "posting", "ko": "올리는 중"},
    "posted": {"en": "done", "ko": "완료"},
    "failed": {"en": "failed", "ko": "실패"},
    "cancelled": {"en": "cancelled", "ko": "취소됨"},
}


def language_of(locale: str | None) -> str:
    """The language Hanul answers in for a Discord locale (`ko` → ko, `en-US` → en, unknown → en)."""
    if not locale:
        return DEFAULT_LANGUAGE
    base = str(locale).split("-")[0].split("_")[0].lower()
    return base if base in LANGUAGES else DEFAULT_LANGUAGE


def text(key: str, locale: str | None = None, **values: object) -> str:
    """The sentence `key` in the member's language, with `values` filled in."""
    variants = STRINGS[key]
    template = variants.get(language_of(locale)) or variants[DEFAULT_LANGUAGE]
    return template.format(**values)


def status_word(status: str, locale: str | None = None) -> str:
    """A generation status as a member reads it."""
    words = STATUS_WORDS.get(status, {})
    return words.get(language_of(locale)) or words.get(DEFAULT_LANGUAGE) or status
