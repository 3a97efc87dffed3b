Feature: Username and password authentication (REQ_0255)

  @REQ_0255 @TEST_0135 @broker_config
  Scenario: Good credentials are presented on CONNECT and reach Up
    Given a broker that requires the user "alice" with password "correct horse"
    And a connector "c" with user "alice" and password "correct horse"
    When "c" starts
    Then "c" reaches Up
    And the wire carried a CONNECT with a username and password from "c"

  @REQ_0255 @TEST_0135 @broker_config
  Scenario: Wrong credentials reach Down, naming authentication, with no further attempts
    Given a broker that requires the user "alice" with password "correct horse"
    And a connector "c" with user "alice" and password "wrong horse"
    When "c" starts
    Then "c" reaches Down with a reason mentioning "auth"
    And after 1 seconds the wire carried exactly 1 CONNECT from "c"
