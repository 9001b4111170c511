"""``surveybot wave check SLUG``: the real CLI asks each platform's stand-in for the survey and says, for every
``--require`` and ``--interview-question`` id, whether the survey has it; a missing id is exit status 1.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from surveybot.platforms import definitions
from tests import fake_limesurvey, fake_platforms
from tests.fake_limesurvey import FakeLimeSurvey, Survey
from tests.service import settings_for


@pytest.fixture
async def platforms():
    fake = fake_platforms.FakePlatform()
    fake.qualtrics_surveys["SV_city"] = {"QID1": "Q1", "QID3": "Q3", "QID5": "Q5", "QID12": "Q9"}
    fake.surveymonkey_surveys["412345678"] = [["101", "102"], ["103"]]
    lime = FakeLimeSurvey(surveys={482913: Survey(questions=LIME_QUESTIONS)})
    runners = [await fake_platforms.start(fake), await fake_limesurvey.start(lime)]
    try:
        yield fake, lime
    finally:
        for runner in runners:
            await runner.cleanup()


LIME_QUESTIONS = [
    {"qid": "11", "parent_qid": "0", "gid": "1", "type": "T", "title": "Q1", "question": "¿Qué redes?"},
    {"qid": "13", "parent_qid": "0", "gid": "1", "type": "M", "title": "Q3", "question": "Temas"},
    {"qid": "14", "parent_qid": "13", "gid": "1", "type": "M", "title": "SQ001", "question": "Clima"},
]


def env_for(fake: fake_platforms.FakePlatform, lime: FakeLimeSurvey) -> dict[str, str]:
    return {
        "QUALTRICS_BASE_URL": fake.url,
        "QUALTRICS_API_TOKEN": fake_platforms.QUALTRICS_TOKEN,
        "SURVEYMONKEY_BASE_URL": fake.url,
        "SURVEYMONKEY_ACCESS_TOKEN": fake_platforms.SURVEYMONKEY_TOKEN,
        "LIMESURVEY_URL": lime.url,
        "LIMESURVEY_USER": fake_limesurvey.USER,
        "LIMESURVEY_PASSWORD": fake_limesurvey.PASSWORD,
    }


async def cli(run_cli, *args: str, env: dict[str, str]):
    return await asyncio.to_thread(run_cli, *args, extra_env=env)


def create(run_cli, slug: str, platform: str, survey_id: str, *options: str) -> None:
    run_cli(
        "wave",
        "create",
        slug,
        "--title",
        "City diplomacy",
        "--platform",
        platform,
        "--survey-id",
        survey_id,
        "--survey-url",
        "https://survey.example.org/s",
        *options,
        check=True,
    )


async def test_qualtrics_ids_are_checked_against_the_survey_definition(platforms, run_cli):
    fake, lime = platforms
    env = env_for(fake, lime)
    create(run_cli, "q", "qualtrics", "SV_city", "--require", "QID1", "--require", "QID5_TEXT", "--require", "Q9",
           "--interview-question", "QID7", "--interview-yes", "1")  # fmt: skip
    result = await cli(run_cli, "wave", "check", "q", "--json", env=env)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["checked"] is True and report["missing"] == ["Q9", "QID7"]
    assert [(q["option"], q["id"], q["found"]) for q in report["questions"]] == [
        ("--require", "QID1", True),
        ("--require", "QID5_TEXT", True),  # a text entry part of QID5
        ("--require", "Q9", False),
        ("--interview-question", "QID7", False),
    ]
    assert report["questions"][2]["hint"] == "Q9 is another name of question QID12: answers are keyed QID12, name that"
    assert report["questions"][3]["hint"] == "no question QID7 in survey SV_city"

    text = await cli(run_cli, "wave", "check", "q", env=env)
    assert text.returncode == 1
    assert "  MISSING  --require Q9   (Q9 is another name of question QID12" in text.stdout
    assert "  ok       --require QID5_TEXT" in text.stdout
    assert "2 of 4 question ids not found in the survey." in text.stdout

    # a token that may read the survey but not its definition (a researcher's): the survey itself is read
    researcher = {**env, "QUALTRICS_API_TOKEN": fake_platforms.QUALTRICS_NOT_ADMIN}
    create(run_cli, "fine", "qualtrics", "SV_city", "--require", "QID1", "--require", "QID12")
    result = await cli(run_cli, "wave", "check", "fine", env=researcher)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All 2 question ids are in the survey." in result.stdout

    wrong = await cli(run_cli, "wave", "check", "fine", env={**env, "QUALTRICS_API_TOKEN": "nope"})
    assert wrong.returncode == 1 and wrong.stdout == ""
    assert wrong.stderr.strip() == (
        "Error: could not read survey SV_city of wave 'fine' from qualtrics: "
        "Qualtrics refused QUALTRICS_API_TOKEN (401)"
    )
    create(run_cli, "gone", "qualtrics", "SV_none", "--require", "QID1")
    gone = await cli(run_cli, "wave", "check", "gone", env=env)
    assert gone.returncode == 1 and "Qualtrics has no such survey (404): check the wave's --survey-id" in gone.stderr


async def test_surveymonkey_ids_are_checked_against_the_survey_details(platforms, run_cli):
    fake, lime = platforms
    create(run_cli, "sm", "surveymonkey", "412345678", "--require", "101", "--require", "103_other",
           "--interview-question", "104", "--interview-yes", "Sí")  # fmt: skip
    result = await cli(run_cli, "wave", "check", "sm", "--json", env=env_for(fake, lime))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert {q["id"]: q["found"] for q in report["questions"]} == {"101": True, "103_other": True, "104": False}
    assert report["missing"] == ["104"]

    create(run_cli, "sm2", "surveymonkey", "412345678", "--require", "102")
    assert (await cli(run_cli, "wave", "check", "sm2", env=env_for(fake, lime))).returncode == 0


async def test_typeform_and_signed_waves_say_why_they_cannot_be_checked(platforms, run_cli):
    fake, lime = platforms
    for platform in ("typeform", "signed"):
        create(run_cli, platform, platform, "F1", "--require", "q1")
        result = await cli(run_cli, "wave", "check", platform, env=env_for(fake, lime))
        assert result.returncode == 0
        assert result.stdout.startswith(f"Wave {platform}: {platform} survey F1 cannot be checked: ")
        assert definitions.WHY_UNCHECKABLE[platform] in result.stdout
        report = json.loads((await cli(run_cli, "wave", "check", platform, "--json", env=env_for(fake, lime))).stdout)
        assert report["checked"] is False and report["questions"][0]["found"] is None


async def test_limesurvey_codes_and_the_survey_itself_are_checked(platforms, tmp_path):
    fake, lime = platforms
    settings = settings_for(tmp_path, f"maildir://{tmp_path / 'mail'}", **env_for(fake, lime))
    wave = {"slug": "ls", "platform": "limesurvey", "survey_id": "482913", "interview_question": "Q2",
            "required": json.dumps(["Q1", "Q3[SQ001]", "Q3[SQ002]"])}  # fmt: skip
    report = await definitions.check_wave(settings, wave)
    assert {q["id"]: q["found"] for q in report["questions"]} == {
        "Q1": True,
        "Q3[SQ001]": True,
        "Q3[SQ002]": True,  # LimeSurvey 5 and later list no subquestions: the question Q3 is what is known
        "Q2": False,
    }
    assert report["problems"] == []
    lime.surveys[482913].anonymized = "Y"
    (problem,) = (await definitions.check_wave(settings, wave))["problems"]
    assert "anonymized responses" in problem
    assert lime.sessions == set()


async def test_wave_check_of_a_limesurvey_wave_through_the_cli(platforms, run_cli):
    fake, lime = platforms
    await cli(run_cli, "wave", "create", "ls", "--title", "City diplomacy", "--platform", "limesurvey",
              "--survey-id", "482913", "--survey-url", "https://survey.example.org/s", "--require", "Q1",
              env=env_for(fake, lime))  # fmt: skip
    lime.surveys[482913].participant_table = False  # someone deleted it after the wave was created
    result = await cli(run_cli, "wave", "check", "ls", env=env_for(fake, lime))
    assert result.returncode == 1
    assert "  ok       --require Q1" in result.stdout
    assert "problem: survey 482913 has no participant table" in result.stdout
