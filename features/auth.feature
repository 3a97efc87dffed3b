Feature: Username and password authentication (REQ_0255)

  @REQ_0255 @TEST_0135 @broker_config
  Scenario: Good credentials are presented on CONNECT and reach Up
    Given a broker that requires a username and password
    And a connector "c" with the right username and password
    When "c" starts
    Then "c" reaches Up
    And the wire carried a CONNECT with a username and password from "c"

  @REQ_0255 @TEST_0135 @broker_config
  Scenario: Wrong credentials reach Down, naming authentication, with no further attempts
    Given a broker that requires a username and password
    And a connector "c" with the right username and a wrong password
    When "c" starts
    Then "c" reaches Down with a reason about authentication
    And the password appears in no health reason, error or log line of "c"
    And after 1 seconds the wire carried exactly 1 CONNECT from "c"
